/** FUSE opcodes (<linux/fuse.h>) of the requests that can reach JavaScript. */
export const Op = {
  LOOKUP: 1,
  GETATTR: 3,
  READLINK: 5,
  READ: 15,
  STATFS: 17,
  GETXATTR: 22,
  LISTXATTR: 23,
  READDIR: 28,
  READDIRPLUS: 44,
} as const;

const NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Op).map(([name, op]) => [op, name.toLowerCase()]));

export function opName(op: number): string {
  return NAMES.get(op) ?? `op${op}`;
}
