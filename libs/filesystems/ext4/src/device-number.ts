/**
 * Device numbers of char/block inodes. ext4 keeps the old 8:8 encoding in
 * i_block[0] when it fits, else the new 12:20 one in i_block[1]; callers get
 * glibc's dev_t, which is what Node's lstat reports as rdev.
 */
export function decodeDevice(block0: number, block1: number): { major: number; minor: number } {
  if (block0 !== 0) return { major: (block0 >>> 8) & 0xff, minor: block0 & 0xff };
  return { major: (block1 & 0xfff00) >>> 8, minor: (block1 & 0xff) | ((block1 >>> 12) & 0xfff00) };
}

/** glibc's makedev, in arithmetic rather than bit operations because the result exceeds 32 bits. */
export function makedev(major: number, minor: number): number {
  return (
    (minor & 0xff) +
    (major & 0xfff) * 0x100 +
    Math.floor(minor / 0x100) * 0x100000 +
    Math.floor(major / 0x1000) * 0x1_0000_0000
  );
}
