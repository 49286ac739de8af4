import { corrupt } from './errors';

export const Namespace = {
  POSIX: 0,
  WIN32: 1,
  DOS: 2,
  WIN32_AND_DOS: 3,
} as const;

export interface FileName {
  parent: number;
  fileAttributes: number;
  namespace: number;
  /** UTF-16LE. */
  name: Buffer;
}

/** A $FILE_NAME value (an attribute, or the key of a directory index entry). */
export function parseFileName(buf: Buffer, at: number, length: number, what: string): FileName {
  if (length < 0x42 || at + length > buf.length) throw corrupt(what, `$FILE_NAME of ${length} bytes`);
  const nameLength = buf[at + 0x40];
  if (0x42 + nameLength * 2 > length) throw corrupt(what, `name of ${nameLength} characters runs past the $FILE_NAME`);
  return {
    parent: Number(buf.readBigUInt64LE(at) & 0xffffffffffffn),
    fileAttributes: buf.readUInt32LE(at + 0x38),
    namespace: buf[at + 0x41],
    name: Buffer.from(buf.subarray(at + 0x42, at + 0x42 + nameLength * 2)),
  };
}
