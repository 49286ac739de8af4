/** One stored attribute: its namespace flags, name and value (or where a remote value lives). */
export interface AttrEntry {
  flags: number;
  name: Buffer;
  value?: Buffer;
  /** Remote value: first attribute-fork block and length. */
  remoteBlock?: number;
  valueLength: number;
}

export const AttrFlag = { LOCAL: 0x1, ROOT: 0x2, SECURE: 0x4, PARENT: 0x8, INCOMPLETE: 0x80 } as const;
export const XATTR_SIZE_MAX = 65536;
