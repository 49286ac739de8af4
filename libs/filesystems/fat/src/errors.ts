import { Errno, StrataError } from '@strata/errors';

/** A structure that cannot be right (the kernel's EFSCORRUPTED, EUCLEAN). */
export function corrupt(structure: string, detail: string): StrataError {
  return new StrataError(Errno.EUCLEAN, `vfat: corrupt ${structure}: ${detail}`);
}

export function unsupported(what: string): StrataError {
  return new StrataError(Errno.EOPNOTSUPP, what);
}

export function notFat(detail: string): StrataError {
  return new StrataError(Errno.EINVAL, `no FAT filesystem: ${detail}`);
}

export function badHandle(handle: number, detail: string): StrataError {
  return new StrataError(Errno.EINVAL, `vfat: handle ${handle}: ${detail}`);
}
