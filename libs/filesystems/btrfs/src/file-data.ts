import { LRUCache } from 'lru-cache';
import type { ByteSource, FsEvent } from '@strata/filesystem';
import type { ItemTree } from './overlay-tree';
import { decompressExtent } from './compression/decompress';
import { Compression, FileExtentType, KeyType } from './constants';
import { corrupt, safeU64, unsupported } from './errors';
import { parseFileExtent, type FileExtent } from './file-extent';
import { U64_MAX, key } from './key';
import { readLogical, type Volume } from './volume';
import { DataChecksums } from './data-csum';

/** BTRFS_INODE_NODATASUM: the inode's data has no checksums. */
const NODATASUM = 1n;

const MAX_EXTENTS_PER_READ = 1 << 20;

/**
 * A file's bytes from its EXTENT_DATA items: inline (possibly compressed),
 * regular (possibly compressed, read through the chunk map), prealloc and
 * holes (explicit, or gaps under NO_HOLES) as zeros. Decompressed extents
 * are kept in a small LRU: a sequential reader asks for each one many times.
 */
export class FileData {
  private readonly decompressed = new LRUCache<string, Buffer>({ max: 64 });
  private readonly csums: DataChecksums;

  constructor(
    private readonly vol: Volume,
    private readonly source: ByteSource,
    private readonly log: (e: FsEvent) => void = () => undefined,
  ) {
    this.csums = new DataChecksums(vol);
  }

  /** `length` bytes at `offset` of inode `objectid` (the caller clamped to i_size). */
  async read(tree: ItemTree, objectid: bigint, offset: number, length: number, inodeFlags = 0n): Promise<Buffer> {
    const verify = (inodeFlags & NODATASUM) === 0n;
    const out = Buffer.alloc(length);
    if (length === 0) return out;
    const end = offset + length;
    const floor = key(objectid, KeyType.EXTENT_DATA, 0n);
    const first = await tree.lastAtOrBefore(key(objectid, KeyType.EXTENT_DATA, BigInt(offset)), floor);
    const from = first ? first.key : floor;
    let n = 0;
    for await (const it of tree.range(from, key(objectid, KeyType.EXTENT_DATA, U64_MAX))) {
      if (++n > MAX_EXTENTS_PER_READ) throw corrupt(`inode ${objectid}: too many extents in one read`);
      const fileStart = safeU64(it.key.offset, 'extent file offset');
      if (fileStart >= end) break;
      const ext = parseFileExtent(it.data);
      if (ext.encryption !== 0 || ext.otherEncoding !== 0) throw unsupported(`inode ${objectid}: encrypted or encoded extent`);
      const extLen = ext.type === FileExtentType.INLINE ? safeU64(ext.ramBytes, 'inline extent size') : safeU64(ext.numBytes, 'extent length');
      const fileEnd = fileStart + extLen;
      if (fileEnd <= offset) continue;
      const lo = Math.max(offset, fileStart);
      const hi = Math.min(end, fileEnd);
      await this.fill(out, lo - offset, ext, lo - fileStart, hi - lo, objectid, verify);
    }
    return out;
  }

  /**
   * Sector-aligned data whose checksums match, from the first copy that
   * has them (DUP data: the kernel's read repair reads the other copy);
   * EIO when no copy does.
   */
  private async verified(logical: number, length: number, objectid: bigint): Promise<Buffer> {
    const copies = this.vol.chunks.find(logical).stripes.length;
    let last: unknown;
    for (let copy = 0; copy < copies; copy++) {
      try {
        const data = await readLogical(this.vol, this.source, logical, length, copy);
        await this.csums.verify(logical, data, `inode ${objectid}`);
        if (copy > 0) this.log({ event: 'btrfs.mirror', logical, reason: last instanceof Error ? last.message : String(last) });
        return data;
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  /** Copies `len` bytes of the extent, from `within` bytes into its file range, to out[at]. */
  private async fill(out: Buffer, at: number, ext: FileExtent, within: number, len: number, objectid: bigint, verify: boolean): Promise<void> {
    const sectorsize = this.vol.sb.sectorsize;
    if (ext.type === FileExtentType.INLINE) {
      const inline = ext.inline ?? Buffer.alloc(0);
      const data = ext.compression === Compression.NONE ? inline : decompressExtent(ext.compression, inline, safeU64(ext.ramBytes, 'inline size'), sectorsize);
      if (within < data.length) data.copy(out, at, within, Math.min(data.length, within + len));
      return;
    }
    if (ext.type === FileExtentType.PREALLOC || ext.diskBytenr === 0n) return;
    const disk = safeU64(ext.diskBytenr, 'extent disk address');
    const extOffset = safeU64(ext.offset, 'extent offset');
    if (ext.compression === Compression.NONE) {
      const pos = disk + extOffset + within;
      if (!verify) {
        (await readLogical(this.vol, this.source, pos, len)).copy(out, at);
        return;
      }
      // Checksums cover whole sectors: read the sectors around the range and verify them first.
      const from = pos - (pos % sectorsize);
      const to = Math.ceil((pos + len) / sectorsize) * sectorsize;
      const data = await this.verified(from, to - from, objectid);
      data.copy(out, at, pos - from, pos - from + len);
      return;
    }
    const cacheKey = `${disk}:${ext.compression}`;
    let data = this.decompressed.get(cacheKey);
    if (!data) {
      const diskLen = safeU64(ext.diskNumBytes, 'compressed extent size');
      if (diskLen > 128 * 1024 + sectorsize) throw corrupt(`inode ${objectid}: compressed extent of ${diskLen} bytes on disk`);
      const raw = verify ? await this.verified(disk, diskLen, objectid) : await readLogical(this.vol, this.source, disk, diskLen);
      data = decompressExtent(ext.compression, raw, safeU64(ext.ramBytes, 'compressed extent size'), sectorsize);
      this.decompressed.set(cacheKey, data);
    }
    const from = extOffset + within;
    if (from < data.length) data.copy(out, at, from, Math.min(data.length, from + len));
  }
}
