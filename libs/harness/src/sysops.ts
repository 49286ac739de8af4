import koffi from 'koffi';

/** System calls node:fs lacks, for building fixtures: mknod and lsetxattr. */
const libc = koffi.load('libc.so.6');
const mknodC = libc.func('int mknod(const uint8_t *path, uint32_t mode, uint64_t dev)');
const lsetxattrC = libc.func('int lsetxattr(const uint8_t *path, const char *name, const uint8_t *value, size_t size, int flags)');

// Re-exported: fixtures name their file types in the one spelling every package uses.
export { S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from '@strata/posix';

/** Linux makedev for the classic 8/12-bit layout (enough for test devices). */
export function makedev(major: number, minor: number): bigint {
  return BigInt(((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12));
}

export function mknod(path: Buffer, mode: number, dev: bigint = 0n): void {
  if (mknodC(Buffer.concat([path, Buffer.alloc(1)]), mode, dev) !== 0) {
    throw new Error(`mknod ${path.toString()} failed: errno ${koffi.errno()}`);
  }
}

export function lsetxattr(path: Buffer, name: string, value: Buffer): void {
  if (lsetxattrC(Buffer.concat([path, Buffer.alloc(1)]), name, value, value.length, 0) !== 0) {
    throw new Error(`lsetxattr ${name} on ${path.toString()} failed: errno ${koffi.errno()}`);
  }
}
