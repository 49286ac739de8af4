import koffi from 'koffi';

/**
 * Node has no xattr API. These are the l* (no-follow) calls straight from
 * libc through koffi, whose prebuilt binary ships inside its npm package, so
 * nothing is compiled at install time. Calls are synchronous: on a local
 * store they cost about as much as one lstat.
 */
const libc = koffi.load('libc.so.6');
const llistxattrC = libc.func('long llistxattr(const uint8_t *path, _Out_ uint8_t *list, size_t size)');
const lgetxattrC = libc.func('long lgetxattr(const uint8_t *path, const char *name, _Out_ uint8_t *value, size_t size)');

const EINTR = 4;
const ENODATA = 61;
/** A signal can interrupt the call (a FUSE request underneath, on Node 24's signal handling): tried again this many times. */
const INTERRUPTED_TRIES = 8;
const ENOTSUP = 95;
const ERANGE = 34;
/** XATTR_LIST_MAX and XATTR_SIZE_MAX: no answer can be larger. */
const XATTR_MAX = 65536;
const scratch = Buffer.alloc(XATTR_MAX);

export class XattrError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

function cPath(path: Buffer): Buffer {
  return Buffer.concat([path, Buffer.alloc(1)]);
}

/** Attribute names of a file (symlinks not followed). A filesystem without xattrs has none. */
export function listXattrs(path: Buffer): string[] {
  const c = cPath(path);
  let n = Number(llistxattrC(c, scratch, XATTR_MAX));
  for (let i = 1; n < 0 && koffi.errno() === EINTR && i < INTERRUPTED_TRIES; i++) n = Number(llistxattrC(c, scratch, XATTR_MAX));
  if (n < 0) {
    const errno = koffi.errno();
    if (errno === ENOTSUP) return [];
    throw new XattrError(errno, `llistxattr failed with errno ${errno}`);
  }
  const names: string[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (scratch[i] === 0) {
      if (i > start) names.push(scratch.toString('utf8', start, i));
      start = i + 1;
    }
  }
  return names;
}

/** The value of one attribute, or undefined when the file does not have it. */
export function getXattr(path: Buffer, name: string): Buffer | undefined {
  const c = cPath(path);
  let n = Number(lgetxattrC(c, name, scratch, XATTR_MAX));
  for (let i = 1; n < 0 && koffi.errno() === EINTR && i < INTERRUPTED_TRIES; i++) n = Number(lgetxattrC(c, name, scratch, XATTR_MAX));
  if (n < 0) {
    const errno = koffi.errno();
    if (errno === ENODATA || errno === ENOTSUP) return undefined;
    if (errno === ERANGE) throw new XattrError(errno, `xattr ${name} is larger than ${XATTR_MAX} bytes`);
    throw new XattrError(errno, `lgetxattr ${name} failed with errno ${errno}`);
  }
  return Buffer.from(scratch.subarray(0, n));
}
