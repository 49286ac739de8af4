import { Errno, GrpcCode, StrataError } from '@strata/errors';

export const PATH_MAX = 4096;
export const NAME_MAX = 255;
const SLASH = 0x2f;

function invalidPath(path: Buffer, why: string): StrataError {
  return new StrataError(Errno.EINVAL, `path ${printable(path)} ${why}`, {
    path,
    code: GrpcCode.INVALID_ARGUMENT,
  });
}

/** A path for messages: UTF-8 where it decodes, \xNN escapes where it does not. */
export function printable(path: Buffer): string {
  let out = '';
  const text = path.toString('utf8');
  if (!text.includes('\ufffd')) return JSON.stringify(text);
  for (const b of path) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return `"${out}"`;
}

/**
 * Splits an absolute path inside a layer into its names. Repeated slashes and
 * "." are dropped; "..", NUL, relative and over-long paths are refused, since a
 * caller that sends them is confused or hostile and the answer must not
 * depend on how we would interpret them.
 */
export function splitPath(path: Buffer): Buffer[] {
  if (path.length === 0 || path[0] !== SLASH) throw invalidPath(path, 'is not absolute');
  if (path.includes(0)) throw invalidPath(path, 'contains a NUL byte');
  if (path.length > PATH_MAX) {
    throw new StrataError(Errno.ENAMETOOLONG, `path is longer than ${PATH_MAX} bytes`, { path, code: GrpcCode.INVALID_ARGUMENT });
  }
  const names: Buffer[] = [];
  let start = 1;
  for (let i = 1; i <= path.length; i++) {
    if (i === path.length || path[i] === SLASH) {
      if (i > start) {
        const name = path.subarray(start, i);
        if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) throw invalidPath(path, 'contains ".."');
        if (!(name.length === 1 && name[0] === 0x2e)) {
          if (name.length > NAME_MAX) {
            throw new StrataError(Errno.ENAMETOOLONG, `a name in path ${printable(path)} is longer than ${NAME_MAX} bytes`, {
              path,
              code: GrpcCode.INVALID_ARGUMENT,
            });
          }
          names.push(name);
        }
      }
      start = i + 1;
    }
  }
  return names;
}

export function joinPath(names: readonly Buffer[]): Buffer {
  if (names.length === 0) return Buffer.from('/');
  const parts: Buffer[] = [];
  for (const n of names) parts.push(SLASH_BUF, n);
  return Buffer.concat(parts);
}

const SLASH_BUF = Buffer.from('/');

/** dir + "/" + name, for real paths on disk. */
export function childPath(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH_BUF, name]);
}

export function toPathBuffer(path: string | Buffer): Buffer {
  return typeof path === 'string' ? Buffer.from(path) : path;
}
