/**
 * Entries of the first FAT, decoded as fs/fat/fatent.c reads them: FAT12
 * packs two 12-bit entries in three bytes (an entry may straddle two
 * sectors), FAT32 ignores the top four bits, and every value at or above the
 * bad-cluster mark reads as end of chain. Only the first FAT is read, as the
 * kernel does. FAT bytes are read in chunks through an LRU cache.
 */
import { readExactly, type ByteSource } from '@strata/filesystem';
import type { Geometry } from './boot-sector';
import { corrupt } from './errors';
import { Lru } from './lru';

export const FAT_FREE = 0;
/** End of chain (the kernel's FAT_ENT_EOF): any value from the bad-cluster mark up. */
export const FAT_EOF = -1;

const CHUNK = 64 * 1024;

/** The value of entry `n` in a FAT given as bytes (pure decoding; unit-tested alone). */
export function decodeEntry(fat: Buffer, fatBits: 12 | 16 | 32, n: number): number {
  if (fatBits === 12) {
    const off = n + (n >> 1);
    const pair = (fat[off] ?? 0) | ((fat[off + 1] ?? 0) << 8);
    const v = n & 1 ? pair >> 4 : pair & 0xfff;
    return v >= 0xff7 ? FAT_EOF : v;
  }
  if (fatBits === 16) {
    const v = fat.readUInt16LE(n * 2);
    return v >= 0xfff7 ? FAT_EOF : v;
  }
  const v = fat.readUInt32LE(n * 4) & 0x0fffffff;
  return v >= 0x0ffffff7 ? FAT_EOF : v;
}

export class FatTable {
  private readonly chunks: Lru<number, Buffer>;

  constructor(
    private readonly source: ByteSource,
    private readonly geo: Geometry,
    cacheBytes: number,
  ) {
    this.chunks = new Lru(Math.max(CHUNK * 4, cacheBytes));
  }

  /** The next cluster after `cluster`: FAT_EOF, FAT_FREE, or a number (not yet checked by the caller). */
  async next(cluster: number): Promise<number> {
    const { fatBits, maxCluster } = this.geo;
    if (cluster < 2 || cluster >= maxCluster) throw corrupt('cluster chain', `invalid access to FAT (entry 0x${cluster.toString(16)})`);
    const byteOffset = fatBits === 12 ? cluster + (cluster >> 1) : (cluster * fatBits) / 8;
    const width = fatBits === 32 ? 4 : 2;
    const bytes = await this.bytes(byteOffset, width);
    if (fatBits === 12) {
      const pair = bytes.readUInt16LE(0);
      const v = cluster & 1 ? pair >> 4 : pair & 0xfff;
      return v >= 0xff7 ? FAT_EOF : v;
    }
    if (fatBits === 16) {
      const v = bytes.readUInt16LE(0);
      return v >= 0xfff7 ? FAT_EOF : v;
    }
    const v = bytes.readUInt32LE(0) & 0x0fffffff;
    return v >= 0x0ffffff7 ? FAT_EOF : v;
  }

  /** Counts free entries among clusters 2..maxCluster-1, as fat_count_free_clusters does. */
  async countFree(): Promise<number> {
    const { fatBits, maxCluster } = this.geo;
    let free = 0;
    const perChunk = Math.floor((CHUNK * 8) / fatBits);
    for (let first = 0; first < maxCluster; first += perChunk) {
      const last = Math.min(maxCluster, first + perChunk);
      const startByte = fatBits === 12 ? first + (first >> 1) : (first * fatBits) / 8;
      const endByte = fatBits === 12 ? last + (last >> 1) + 2 : (last * fatBits) / 8;
      const buf = await this.bytes(startByte, Math.min(endByte, this.geo.fatBytes) - startByte);
      for (let n = Math.max(2, first); n < last; n++) {
        const local = n - first;
        // FAT12: `first` is even, so local parity equals n's parity and the byte arithmetic lines up.
        if (decodeEntry(buf, fatBits, local) === FAT_FREE) free++;
      }
    }
    return free;
  }

  private async bytes(offset: number, length: number): Promise<Buffer> {
    if (offset + length > this.geo.fatBytes) throw corrupt('FAT', `entry bytes ${offset}+${length} lie past the FAT (${this.geo.fatBytes} bytes)`);
    const first = Math.floor(offset / CHUNK);
    const last = Math.floor((offset + length - 1) / CHUNK);
    if (first === last) {
      const c = await this.chunk(first);
      return c.subarray(offset - first * CHUNK, offset - first * CHUNK + length);
    }
    const parts: Buffer[] = [];
    for (let i = first; i <= last; i++) parts.push(await this.chunk(i));
    const all = Buffer.concat(parts);
    return all.subarray(offset - first * CHUNK, offset - first * CHUNK + length);
  }

  private async chunk(index: number): Promise<Buffer> {
    const hit = this.chunks.get(index);
    if (hit) return hit;
    const start = index * CHUNK;
    const length = Math.min(CHUNK, this.geo.fatBytes - start);
    const buf = await readExactly(this.source, this.geo.fatOffset + start, length, 'FAT');
    this.chunks.set(index, buf, buf.length);
    return buf;
  }
}
