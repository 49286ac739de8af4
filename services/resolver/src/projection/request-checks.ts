import { StrataError } from '@strata/errors';
import { printable } from '@strata/traversal';

/** Largest read answered in one Session message (a short read, as read(2) may return). */
export const SESSION_READ_MAX = 1 << 20;
/** Chunk size of the unary Read stream. */
export const READ_CHUNK = 1 << 20;
export const READDIR_DEFAULT_LIMIT = 1024;
export const READDIR_MAX_LIMIT = 16384;

export function checkOffset(what: string, value: number, path: Buffer): void {
  // uint64 values beyond 2^53 never get here (the decoder refuses them); this is the rest.
  if (!Number.isSafeInteger(value) || value < 0) throw StrataError.invalid(`${what} ${value} is out of range`, path);
}

export function checkXattrName(name: string, path: Buffer): void {
  if (name === '' || name.length > 255 || name.includes('\0')) throw StrataError.invalid(`bad xattr name ${JSON.stringify(name)}`, path);
}

/** A directory listing page size as the caller asked for it, bounded. */
export function pageSize(limit: number): number {
  return limit === 0 ? READDIR_DEFAULT_LIMIT : Math.min(limit, READDIR_MAX_LIMIT);
}

export function notFound(what: string, path: Buffer): StrataError {
  return StrataError.notFound(`${what}: ${printable(path)}`, path);
}
