/** Linux errno values (asm-generic/errno-base.h, errno.h) that strata hands out. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EBADMSG: 74,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  ESTALE: 116,
  /** Structure needs cleaning: the kernel's answer for a corrupt on-disk object (EFSCORRUPTED). */
  EUCLEAN: 117,
  ECANCELED: 125,
} as const;

export type ErrnoName = keyof typeof Errno;

const byNumber = new Map<number, ErrnoName>(
  (Object.entries(Errno) as [ErrnoName, number][]).map(([name, n]) => [n, name]),
);

export function errnoName(errno: number): string {
  return byNumber.get(errno) ?? `E${errno}`;
}

export function isErrnoName(name: string): name is ErrnoName {
  return Object.prototype.hasOwnProperty.call(Errno, name);
}
