import { Errno, StrataError } from '@strata/errors';
import { BlockMapLayer, TableReader, type BlockMapping } from '../block-map-layer';
import type { ChainCaches } from '../chain';
import { appendRange, type GuestRange, type Layer } from '../layer';
import type { StoreFile } from '../store-file';

/**
 * An ESXi seSparse extent (the snapshot delta format of VMFS 6), read as
 * qemu reads it — VMware documents none of it, and qemu's reader is strict
 * about every field it does not understand, so we are too. All fields are
 * little-endian u64. A constant header at 0 and a volatile header; a grain
 * directory whose valid entries are 0x10000000_iiiiiiii (grain table index
 * i); grain tables of 4096 entries whose top nibble says unallocated (0),
 * unmapped or zero (1, 2: zeros) or allocated (3: a grain index, its bits
 * split around the nibble); 4 KiB grains.
 */
const CONST_MAGIC = 0xcafebaben;
const VOLATILE_MAGIC = 0xcafecafen;
const VERSION_2_1 = 0x0000000200000001n;
const GRAIN_SECTORS = 8;
const GT_SECTORS = 64;
const GT_ENTRIES = (GT_SECTORS * 512) / 8;
const GRAIN = GRAIN_SECTORS * 512;
/** A grain directory we hold whole at most (64 TiB of disk needs 32 KiB). */
const MAX_GD_ENTRIES = 1024 * 1024;

export const SESPARSE_MAGIC = Buffer.from([0xbe, 0xba, 0xfe, 0xca, 0, 0, 0, 0]);

interface SeSparseHeader {
  capacitySectors: number;
  gdSector: number;
  gdEntries: number;
  gtSector: number;
  grainsSector: number;
}

function corrupt(label: string, what: string): StrataError {
  return StrataError.corrupt(`VMDK seSparse ${label}: ${what}`);
}

function field(h: Buffer, at: number, label: string, name: string): number {
  const v = h.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) / 512n) throw corrupt(label, `${name} ${v} is out of range`);
  return Number(v);
}

export async function readSeSparseHeader(file: StoreFile, label: string): Promise<SeSparseHeader> {
  if (file.size < 1024) throw corrupt(label, `file of ${file.size} bytes is too short`);
  const h = await file.read(0, 512);
  if (h.readBigUInt64LE(0) !== CONST_MAGIC) throw corrupt(label, 'bad constant header magic');
  const unsupported = (what: string): StrataError => new StrataError(Errno.EOPNOTSUPP, `VMDK seSparse ${label}: ${what} is not supported`);
  if (h.readBigUInt64LE(8) !== VERSION_2_1) throw unsupported(`version ${h.readBigUInt64LE(8).toString(16)}`);
  if (h.readBigUInt64LE(24) !== BigInt(GRAIN_SECTORS)) throw unsupported(`grain size ${h.readBigUInt64LE(24)}`);
  if (h.readBigUInt64LE(32) !== BigInt(GT_SECTORS)) throw unsupported(`grain table size ${h.readBigUInt64LE(32)}`);
  if (h.readBigUInt64LE(40) !== 0n) throw unsupported(`flags ${h.readBigUInt64LE(40).toString(16)}`);
  if (!h.subarray(48, 80).every((b) => b === 0) || !h.subarray(208).every((b) => b === 0)) throw unsupported('non-zero reserved fields');
  const volatileSector = field(h, 80, label, 'volatile header offset');
  if ((volatileSector + 1) * 512 > file.size) throw corrupt(label, 'volatile header is past the end of the file');
  const v = await file.read(volatileSector * 512, 512);
  if (v.readBigUInt64LE(0) !== VOLATILE_MAGIC) throw corrupt(label, 'bad volatile header magic');
  if (v.readBigUInt64LE(24) !== 0n) throw unsupported('a journal to replay (the disk was not closed cleanly)');
  if (!v.subarray(32).every((b) => b === 0)) throw unsupported('non-zero volatile header padding');
  const gdSectors = field(h, 136, label, 'grain directory size');
  const header = {
    capacitySectors: field(h, 16, label, 'capacity'),
    gdSector: field(h, 128, label, 'grain directory offset'),
    gdEntries: (gdSectors * 512) / 8,
    gtSector: field(h, 144, label, 'grain tables offset'),
    grainsSector: field(h, 192, label, 'grains offset'),
  };
  if (header.gdEntries > MAX_GD_ENTRIES) throw unsupported(`a grain directory of ${header.gdEntries} entries`);
  if (header.gdEntries * GT_ENTRIES * GRAIN < header.capacitySectors * 512) throw corrupt(label, 'the grain directory is too small for the capacity');
  return header;
}

export class SeSparseExtentLayer extends BlockMapLayer {
  private readonly gd: TableReader;

  constructor(
    size: number,
    private readonly file: StoreFile,
    private readonly h: SeSparseHeader,
    parent: Layer | undefined,
    private readonly caches: ChainCaches,
    private readonly cacheKey: string,
    label: string,
  ) {
    super(size, GRAIN, parent, label);
    this.gd = new TableReader(file, caches.metadata, `${cacheKey}:sgd`, h.gdSector * 512, 8, h.gdEntries, `VMDK seSparse ${label}: grain directory`);
  }

  /** The file offset of a grain directory slot's table, or 0 when it has none. */
  private async tableOffset(slot: number): Promise<number> {
    if (slot >= this.h.gdEntries) return 0;
    const e = await this.gd.entry(slot);
    const lo = e.readUInt32LE(0);
    const hi = e.readUInt32LE(4);
    if (hi === 0 && lo === 0) return 0;
    if (hi !== 0x10000000) throw corrupt(this.label, `grain directory entry ${slot} is ${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`);
    const offset = (this.h.gtSector + lo * GT_SECTORS) * 512;
    if (offset + GT_SECTORS * 512 > this.file.size) throw corrupt(this.label, `grain table ${lo} is past the end of the file`);
    return offset;
  }

  /** What one grain table entry maps to: 'parent', 'zero' or the grain's file offset. */
  private grain(table: Buffer, i: number, index: number): 'parent' | 'zero' | number {
    const lo = table.readUInt32LE(i * 8);
    const hi = table.readUInt32LE(i * 8 + 4);
    switch (hi >>> 28) {
      case 0:
        if (hi !== 0 || lo !== 0) throw corrupt(this.label, `grain table entry for grain ${index} has stray bits`);
        return 'parent';
      case 1:
      case 2:
        return 'zero';
      case 3: {
        const grainIndex = ((hi >>> 16) & 0xfff) + ((hi & 0xffff) * 2 ** 32 + lo) * 4096;
        const host = (this.h.grainsSector + grainIndex * GRAIN_SECTORS) * 512;
        if (!Number.isSafeInteger(host) || host + GRAIN > this.file.size) throw corrupt(this.label, `grain ${index} at file offset ${host} is past the end of the file`);
        return host;
      }
      default:
        throw corrupt(this.label, `grain table entry for grain ${index} has type ${hi >>> 28}`);
    }
  }

  protected async mapBlock(index: number): Promise<BlockMapping> {
    const offset = await this.tableOffset(Math.floor(index / GT_ENTRIES));
    if (offset === 0) return { kind: 'parent' };
    const table = await this.caches.metadata.get(`${this.cacheKey}:sgt:${offset}`, () => this.file.read(offset, GT_SECTORS * 512));
    const g = this.grain(table, index % GT_ENTRIES, index);
    if (g === 'parent') return { kind: 'parent' };
    if (g === 'zero') return { kind: 'zero' };
    return { kind: 'data', file: this.file, host: g };
  }

  /** From the grain tables alone, each read once and not cached. */
  override async ownRanges(): Promise<GuestRange[]> {
    const out: GuestRange[] = [];
    const slots = Math.ceil(this.size / (GT_ENTRIES * GRAIN));
    for (let slot = 0; slot < slots; slot++) {
      const offset = await this.tableOffset(slot);
      if (offset === 0) continue;
      const table = await this.file.read(offset, GT_SECTORS * 512);
      for (let i = 0; i < GT_ENTRIES; i++) {
        const index = slot * GT_ENTRIES + i;
        const g = this.grain(table, i, index);
        if (g === 'parent' || (g === 'zero' && !this.parent)) continue;
        appendRange(out, index * GRAIN, GRAIN, this.size);
      }
    }
    return out;
  }
}
