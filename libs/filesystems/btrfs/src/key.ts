/** A btrfs key: (objectid, type, offset), ordered in that order, all unsigned. */
export interface Key {
  objectid: bigint;
  type: number;
  offset: bigint;
}

export const KEY_SIZE = 17;

export function readKey(buf: Buffer, at: number): Key {
  return { objectid: buf.readBigUInt64LE(at), type: buf[at + 8], offset: buf.readBigUInt64LE(at + 9) };
}

export function compareKeys(a: Key, b: Key): number {
  if (a.objectid !== b.objectid) return a.objectid < b.objectid ? -1 : 1;
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.offset !== b.offset) return a.offset < b.offset ? -1 : 1;
  return 0;
}

export const U64_MAX = 0xffff_ffff_ffff_ffffn;

export function key(objectid: bigint, type: number, offset: bigint): Key {
  return { objectid, type, offset };
}

export function keyText(k: Key): string {
  return `(${k.objectid} ${k.type} ${k.offset})`;
}
