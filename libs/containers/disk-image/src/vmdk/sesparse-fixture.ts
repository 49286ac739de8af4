// Helpers for tests: an ESXi seSparse extent laid out as qemu's reader expects one.

/**
 * An seSparse extent of `size` bytes: constant header at sector 0, volatile
 * header at 1, a one-sector grain directory at 8, one grain table at 16,
 * grains from 80. `grains` maps guest grains (4 KiB) to grain indexes, each
 * filled with 0x40 + its index; `zero` grains read as zeros.
 */
export function seSparseExtent(size: number, grains: readonly [number, number][], zero: readonly number[] = []): Buffer {
  const extent = Buffer.alloc((80 + grains.length * 8) * 512);
  const u64 = (at: number, v: bigint): void => void extent.writeBigUInt64LE(v, at);
  u64(0, 0xcafebaben);
  u64(8, 0x0000000200000001n);
  u64(16, BigInt(size / 512));
  u64(24, 8n);
  u64(32, 64n);
  u64(80, 1n);
  u64(88, 1n);
  u64(128, 8n);
  u64(136, 1n);
  u64(144, 16n);
  u64(152, 64n);
  u64(192, 80n);
  u64(200, BigInt(grains.length * 8));
  u64(512, 0xcafecafen);
  u64(8 * 512, 0x1000000000000000n);
  const gte = (guestGrain: number, v: bigint): void => void extent.writeBigUInt64LE(v, 16 * 512 + guestGrain * 8);
  for (const [guestGrain, index] of grains) {
    const i = BigInt(index);
    gte(guestGrain, (3n << 60n) | ((i & 0xfffn) << 48n) | (i >> 12n));
    extent.fill(0x40 + index, (80 + index * 8) * 512, (88 + index * 8) * 512);
  }
  for (const g of zero) gte(g, 2n << 60n);
  return extent;
}
