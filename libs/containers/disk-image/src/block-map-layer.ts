import { StrataError } from '@strata/errors';
import type { BoundedCache } from './bounded-cache';
import { appendRange, readParent, runLimited, type GuestRange, type Layer } from './layer';
import type { FileReader } from './store-file';
import { mapFile, mapLayer, pushRun, type LayerRun } from './map-range';

/** What one block of a block-mapped format (VHD, VHDX, VDI, VMDK grains) reads as. */
export type BlockMapping =
  | { kind: 'zero' }
  /** Not in this file: the parent's bytes, or zeros without a parent. */
  | { kind: 'parent' }
  /** Stored whole in `file` from `host` (the block's first byte). */
  | { kind: 'data'; file: FileReader; host: number }
  /** Stored at `host`, but only the sectors whose bitmap bit is set; the rest is the parent's. */
  | { kind: 'partial'; file: FileReader; host: number; present: (sector: number) => boolean; sectorSize: number }
  /** The whole block, already in memory (a decompressed grain). */
  | { kind: 'bytes'; bytes: Buffer };

/** What a block is for mapping: a mapping, or a place no pread reaches (a compressed grain, left undecompressed). */
export type BlockLocation = BlockMapping | { kind: 'unmapped'; reason: string };

/** Preads in flight per read request. */
const READ_CONCURRENCY = 8;

type Segment =
  | { kind: 'zero' | 'parent'; guest: number; length: number }
  | { kind: 'data'; guest: number; length: number; file: FileReader; host: number }
  | { kind: 'bytes'; guest: number; length: number; bytes: Buffer; within: number };

/**
 * A virtual disk cut into equal blocks, each mapped by a table to host bytes,
 * zeros or the parent. Formats supply `mapBlock`; reads merge contiguous host
 * data into single preads, and `ownRanges` walks the map without reading data.
 */
export abstract class BlockMapLayer implements Layer {
  constructor(
    readonly size: number,
    protected readonly blockSize: number,
    protected readonly parent: Layer | undefined,
    protected readonly label: string,
  ) {}

  protected abstract mapBlock(index: number): Promise<BlockMapping>;

  /** Where a block lies, for mapRange; formats whose mapBlock decompresses say 'unmapped' here without doing so. */
  protected locateBlock(index: number): Promise<BlockLocation> {
    return this.mapBlock(index);
  }

  async mapRange(offset: number, length: number, out: LayerRun[]): Promise<void> {
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const index = Math.floor(pos / this.blockSize);
      const within = pos - index * this.blockSize;
      const take = Math.min(this.blockSize - within, end - pos);
      const m = await this.locateBlock(index);
      switch (m.kind) {
        case 'zero':
          pushRun(out, { kind: 'zero', length: take });
          break;
        case 'parent':
          await mapLayer(this.parent, pos, take, out);
          break;
        case 'data':
          mapFile(m.file, m.host + within, take, out);
          break;
        case 'bytes':
          pushRun(out, { kind: 'unmapped', length: take, reason: 'compressed grain' });
          break;
        case 'unmapped':
          pushRun(out, { kind: 'unmapped', length: take, reason: m.reason });
          break;
        case 'partial': {
          let p = within;
          while (p < within + take) {
            const sector = Math.floor(p / m.sectorSize);
            const n = Math.min((sector + 1) * m.sectorSize, within + take) - p;
            if (m.present(sector)) mapFile(m.file, m.host + p, n, out);
            else await mapLayer(this.parent, pos + (p - within), n, out);
            p += n;
          }
          break;
        }
      }
      pos += take;
    }
  }

  async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    const segments: Segment[] = [];
    const push = (s: Segment): void => {
      const last = segments[segments.length - 1];
      if (last && last.guest + last.length === s.guest && last.kind === s.kind && s.kind !== 'bytes') {
        if (s.kind !== 'data' || (last.kind === 'data' && last.file === s.file && last.host + last.length === s.host)) {
          last.length += s.length;
          return;
        }
      }
      segments.push(s);
    };
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const index = Math.floor(pos / this.blockSize);
      const within = pos - index * this.blockSize;
      const take = Math.min(this.blockSize - within, end - pos);
      const m = await this.mapBlock(index);
      switch (m.kind) {
        case 'zero':
        case 'parent':
          push({ kind: m.kind, guest: pos, length: take });
          break;
        case 'data':
          push({ kind: 'data', guest: pos, length: take, file: m.file, host: m.host + within });
          break;
        case 'bytes':
          push({ kind: 'bytes', guest: pos, length: take, bytes: m.bytes, within });
          break;
        case 'partial': {
          let p = within;
          while (p < within + take) {
            const sector = Math.floor(p / m.sectorSize);
            const n = Math.min((sector + 1) * m.sectorSize, within + take) - p;
            if (m.present(sector)) push({ kind: 'data', guest: pos + (p - within), length: n, file: m.file, host: m.host + p });
            else push({ kind: 'parent', guest: pos + (p - within), length: n });
            p += n;
          }
          break;
        }
      }
      pos += take;
    }
    await runLimited(
      segments.map((s) => async () => {
        const at = targetOffset + (s.guest - offset);
        switch (s.kind) {
          case 'zero':
            target.fill(0, at, at + s.length);
            return;
          case 'parent':
            return readParent(this.parent, target, at, s.guest, s.length);
          case 'data':
            return s.file.readInto(target, at, s.length, s.host);
          case 'bytes':
            s.bytes.copy(target, at, s.within, s.within + s.length);
            return;
        }
      }),
      READ_CONCURRENCY,
    );
  }

  /**
   * Blocks the file answers itself (data, zero, or the present sectors of a
   * partial block): what a delta can have changed over its parent. Without a
   * parent, everything outside them reads as zeros.
   */
  async ownRanges(): Promise<GuestRange[]> {
    const out: GuestRange[] = [];
    const blocks = Math.ceil(this.size / this.blockSize);
    for (let i = 0; i < blocks; i++) {
      const skip = await this.unmappedRun(i);
      if (skip > 0) {
        i += skip - 1;
        continue;
      }
      const m = await this.mapBlock(i);
      const start = i * this.blockSize;
      // Zeros the file records (VHDX ZERO blocks, VDI discarded ones) change nothing when there is no parent to hide.
      if (m.kind === 'parent' || (m.kind === 'zero' && !this.parent)) continue;
      if (m.kind !== 'partial') {
        appendRange(out, start, this.blockSize, this.size);
        continue;
      }
      for (let s = 0; s * m.sectorSize < this.blockSize; s++) {
        if (m.present(s)) appendRange(out, start + s * m.sectorSize, m.sectorSize, this.size);
      }
    }
    return out;
  }

  /** How many blocks from `index` on are known to be the parent's without mapping them one by one (a missing grain table). */
  protected unmappedRun(_index: number): Promise<number> {
    return Promise.resolve(0);
  }
}

/**
 * Entries of an on-disk table (BAT, block map, grain directory) read lazily in
 * 32 KiB pieces through the chain's bounded metadata cache, so a huge table
 * is never loaded whole.
 */
export class TableReader {
  private static readonly CHUNK_BYTES = 32 * 1024;

  constructor(
    private readonly file: FileReader,
    private readonly cache: BoundedCache,
    private readonly cacheKey: string,
    private readonly offset: number,
    private readonly entrySize: 4 | 8,
    readonly entries: number,
    private readonly what: string,
  ) {
    if (offset + entries * entrySize > file.size) {
      throw StrataError.corrupt(`${what} at file offset ${offset} (${entries} entries) reaches past the end of the file (${file.size} bytes)`);
    }
  }

  /** The entry's bytes, as a slice of a cached piece. */
  async entry(index: number): Promise<Buffer> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.entries) {
      throw StrataError.corrupt(`${this.what}: entry ${index} is outside the table of ${this.entries} entries`);
    }
    const perChunk = TableReader.CHUNK_BYTES / this.entrySize;
    const chunk = Math.floor(index / perChunk);
    const first = chunk * perChunk;
    const count = Math.min(perChunk, this.entries - first);
    const bytes = await this.cache.get(`${this.cacheKey}:${chunk}`, () => this.file.read(this.offset + first * this.entrySize, count * this.entrySize));
    const at = (index - first) * this.entrySize;
    return bytes.subarray(at, at + this.entrySize);
  }
}
