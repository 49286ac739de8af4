import { inflate } from 'node:zlib';
import { Errno, StrataError } from '@strata/errors';
import { BlockMapLayer, TableReader, type BlockLocation, type BlockMapping } from '../block-map-layer';
import type { ChainCaches } from '../chain';
import { MAX_VMDK_DESCRIPTOR } from '../format/detect';
import { appendRange, type GuestRange, type Layer } from '../layer';
import type { StoreFile } from '../store-file';

/**
 * A hosted sparse extent ('KDMV', little-endian): header, optional embedded
 * descriptor, a grain directory (and its redundant copy) of u32 sector
 * offsets of grain tables, grain tables of u32 sector offsets of grains.
 * streamOptimized extents keep their real header in a footer at the end and
 * hold deflate-compressed grains, each after a 12-byte marker (lba, size).
 */
const FLAG_REDUNDANT_GD = 1 << 1;
const FLAG_ZERO_GRAIN = 1 << 2;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
const GD_AT_END = 0xffffffffffffffffn;
const COMPRESS_DEFLATE = 1;
/** qemu's limits: grains of at most 1 GiB (0x200000 sectors), grain tables of at most 512 KiB… */
const MAX_GRAIN_SECTORS = 0x200000;
const MAX_GTES_PER_GT = 65536;
/** …and a grain directory we are willing to hold whole. */
const MAX_GD_BYTES = 16 * 1024 * 1024;
/** Grain tables read in one pread when scanning for own ranges. */
const MAX_SCAN_BYTES = 1024 * 1024;

export interface SparseHeader {
  version: number;
  flags: number;
  capacitySectors: number;
  grainSectors: number;
  descriptorSector: number;
  descriptorSectors: number;
  gtesPerGt: number;
  rgdSector: number;
  gdSector: number;
  compressAlgorithm: number;
}

function corrupt(label: string, what: string): StrataError {
  return StrataError.corrupt(`VMDK ${label}: ${what}`);
}

function u64(b: Buffer, at: number, label: string, field: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) / 512n) throw corrupt(label, `${field} ${v} is out of range`);
  return Number(v);
}

function parseHeader(h: Buffer, label: string): SparseHeader & { gdAtEnd: boolean } {
  if (h.subarray(0, 4).toString('latin1') !== 'KDMV') throw corrupt(label, 'no "KDMV" sparse extent header');
  const version = h.readUInt32LE(4);
  if (version < 1 || version > 3) throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: sparse extent version ${version} is not supported`);
  const gdRaw = h.readBigUInt64LE(56);
  return {
    version,
    flags: h.readUInt32LE(8),
    capacitySectors: u64(h, 12, label, 'capacity'),
    grainSectors: u64(h, 20, label, 'grainSize'),
    descriptorSector: u64(h, 28, label, 'descriptorOffset'),
    descriptorSectors: u64(h, 36, label, 'descriptorSize'),
    gtesPerGt: h.readUInt32LE(44),
    rgdSector: u64(h, 48, label, 'rgdOffset'),
    gdAtEnd: gdRaw === GD_AT_END,
    gdSector: gdRaw === GD_AT_END ? 0 : u64(h, 56, label, 'gdOffset'),
    compressAlgorithm: h.readUInt16LE(77),
  };
}

/** The header a reader must use: the footer's for streamOptimized files whose header says "GD at end". */
export async function readSparseHeader(file: StoreFile, label: string): Promise<SparseHeader> {
  if (file.size < 512) throw corrupt(label, `file of ${file.size} bytes is too short`);
  const header = parseHeader(await file.read(0, 512), label);
  if (!header.gdAtEnd) return header;
  if (file.size < 1536) throw corrupt(label, 'grain directory "at end" but no footer');
  const footer = parseHeader(await file.read(file.size - 1024, 512), label);
  if (footer.gdAtEnd) throw corrupt(label, 'the footer also puts the grain directory "at end"');
  return footer;
}

/** The descriptor text embedded in a sparse file, if any. */
export async function readEmbeddedDescriptor(file: StoreFile, h: SparseHeader, label: string): Promise<string | undefined> {
  if (h.descriptorSector === 0 || h.descriptorSectors === 0) return undefined;
  const bytes = h.descriptorSectors * 512;
  if (bytes > MAX_VMDK_DESCRIPTOR) throw corrupt(label, `embedded descriptor of ${bytes} bytes`);
  if ((h.descriptorSector + h.descriptorSectors) * 512 > file.size) throw corrupt(label, 'embedded descriptor is past the end of the file');
  return (await file.read(h.descriptorSector * 512, bytes)).toString('utf8');
}

function inflateZlib(input: Buffer, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => inflate(input, { maxOutputLength: max }, (err, out) => (err ? reject(err) : resolve(out))));
}

/** One sparse extent as a layer of `size` bytes over the same stretch of the parent. */
export class SparseExtentLayer extends BlockMapLayer {
  private readonly gd: TableReader;
  private readonly rgd: TableReader | undefined;
  private readonly grainBytes: number;
  private readonly gtBytes: number;
  private readonly compressed: boolean;
  private readonly markers: boolean;
  private readonly zeroGrains: boolean;

  constructor(
    size: number,
    private readonly file: StoreFile,
    private readonly h: SparseHeader,
    parent: Layer | undefined,
    private readonly caches: ChainCaches,
    private readonly cacheKey: string,
    label: string,
  ) {
    const grainSectors = h.grainSectors;
    if (grainSectors < 1 || grainSectors > MAX_GRAIN_SECTORS || (grainSectors & (grainSectors - 1)) !== 0) {
      throw corrupt(label, `grain size of ${grainSectors} sectors`);
    }
    super(size, grainSectors * 512, parent, label);
    this.grainBytes = grainSectors * 512;
    if (h.gtesPerGt < 1 || h.gtesPerGt > MAX_GTES_PER_GT) throw corrupt(label, `${h.gtesPerGt} entries per grain table`);
    this.gtBytes = h.gtesPerGt * 4;
    this.compressed = (h.flags & FLAG_COMPRESSED) !== 0;
    this.markers = (h.flags & FLAG_MARKERS) !== 0;
    this.zeroGrains = (h.flags & FLAG_ZERO_GRAIN) !== 0;
    if (this.compressed && h.compressAlgorithm !== COMPRESS_DEFLATE) {
      throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: compression algorithm ${h.compressAlgorithm} is not supported (deflate is)`);
    }
    // Grains the extent's own capacity covers; the descriptor may give the extent fewer sectors, never more.
    const coverage = Math.max(h.capacitySectors * 512, size);
    const gdEntries = Math.ceil(coverage / (this.grainBytes * h.gtesPerGt));
    if (gdEntries * 4 > MAX_GD_BYTES) throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: a grain directory of ${gdEntries} entries is too large`);
    const table = (sector: number, what: string): TableReader | undefined => {
      if (sector === 0) return undefined;
      const offset = sector * 512;
      if (offset + gdEntries * 4 > file.size) return undefined;
      return new TableReader(file, caches.metadata, `${cacheKey}:${what}`, offset, 4, gdEntries, `VMDK ${label}: ${what}`);
    };
    const gd = table(h.gdSector, 'grain directory');
    this.rgd = h.flags & FLAG_REDUNDANT_GD ? table(h.rgdSector, 'redundant grain directory') : undefined;
    const usable = gd ?? this.rgd;
    if (!usable) throw corrupt(label, `grain directory at sector ${h.gdSector} is outside the file`);
    this.gd = usable;
  }

  /** The grain table of one directory slot, or undefined when none is allocated; the redundant copy stands in for a primary that points outside the file. */
  private async grainTable(slot: number, redundant = false): Promise<Buffer | undefined> {
    const valid = (sector: number): boolean => sector !== 0 && sector * 512 + this.gtBytes <= this.file.size;
    const backupDir = this.rgd && this.rgd !== this.gd ? this.rgd : undefined;
    if (redundant && !backupDir) return undefined;
    let sector = (await (redundant && backupDir ? backupDir : this.gd).entry(slot)).readUInt32LE(0);
    if (!redundant && sector !== 0 && !valid(sector) && backupDir) {
      const backup = (await backupDir.entry(slot)).readUInt32LE(0);
      if (valid(backup)) sector = backup;
    }
    if (sector === 0) return undefined;
    if (!valid(sector)) throw corrupt(this.label, `grain directory entry ${slot} points at sector ${sector}, outside the file`);
    return this.caches.metadata.get(`${this.cacheKey}:gt:${sector}`, () => this.file.read(sector * 512, this.gtBytes));
  }

  /**
   * The grains this extent holds, from its grain tables alone (qemu
   * preallocates every table of a monolithicSparse file, so a 2 TiB disk has
   * 65536 of them): tables that lie end to end are read in one pread of up
   * to 1 MiB, bypassing the metadata cache so a scan does not evict what
   * reads use.
   */
  override async ownRanges(): Promise<GuestRange[]> {
    const out: GuestRange[] = [];
    const perGt = this.h.gtesPerGt;
    const slots = Math.ceil(this.size / (this.grainBytes * perGt));
    const valid = (sector: number): boolean => sector !== 0 && sector * 512 + this.gtBytes <= this.file.size;
    const sectors: number[] = [];
    for (let slot = 0; slot < slots; slot++) {
      let sector = (await this.gd.entry(slot)).readUInt32LE(0);
      if (sector !== 0 && !valid(sector) && this.rgd && this.rgd !== this.gd) {
        const backup = (await this.rgd.entry(slot)).readUInt32LE(0);
        if (valid(backup)) sector = backup;
      }
      if (sector !== 0 && !valid(sector)) throw corrupt(this.label, `grain directory entry ${slot} points at sector ${sector}, outside the file`);
      sectors.push(sector);
    }
    const maxRun = Math.max(1, Math.floor(MAX_SCAN_BYTES / this.gtBytes));
    for (let slot = 0; slot < slots; ) {
      if (sectors[slot] === 0) {
        slot++;
        continue;
      }
      let run = 1;
      while (run < maxRun && slot + run < slots && sectors[slot + run] === sectors[slot] + (run * this.gtBytes) / 512) run++;
      const tables = await this.file.read(sectors[slot] * 512, run * this.gtBytes);
      for (let t = 0; t < run; t++) {
        for (let e = 0; e < perGt; e++) {
          const entry = tables.readUInt32LE(t * this.gtBytes + e * 4);
          if (entry === 0) continue;
          // A zero grain hides the parent; with no parent it holds nothing.
          if (entry === 1 && this.zeroGrains && !this.parent) continue;
          appendRange(out, ((slot + t) * perGt + e) * this.grainBytes, this.grainBytes, this.size);
        }
      }
      slot += run;
    }
    return out;
  }

  protected async mapBlock(index: number): Promise<BlockMapping> {
    const host = await this.grainHost(index);
    if (typeof host !== 'number') return { kind: host };
    if (!this.compressed) return { kind: 'data', file: this.file, host };
    const bytes = await this.caches.clusters.get(`${this.cacheKey}:g:${host}`, () => this.readCompressedGrain(index, host));
    return { kind: 'bytes', bytes };
  }

  /** A compressed grain is found, not inflated: mapRange only says a pread cannot reach it. */
  protected override async locateBlock(index: number): Promise<BlockLocation> {
    if (!this.compressed) return this.mapBlock(index);
    const host = await this.grainHost(index);
    return typeof host === 'number' ? { kind: 'unmapped', reason: 'compressed grain' } : { kind: host };
  }

  /** Where grain `index` starts in the file, or that it is the parent's or zeros. */
  private async grainHost(index: number): Promise<number | 'parent' | 'zero'> {
    const slot = Math.floor(index / this.h.gtesPerGt);
    const gt = await this.grainTable(slot);
    if (!gt) return 'parent';
    const entry = gt.readUInt32LE((index % this.h.gtesPerGt) * 4);
    if (entry === 0) return 'parent';
    if (entry === 1 && this.zeroGrains) return 'zero';
    let host = entry * 512;
    if (host >= this.file.size) {
      // A damaged primary table: the redundant one may still say where the grain is.
      const backup = await this.grainTable(slot, true).catch(() => undefined);
      const other = backup ? backup.readUInt32LE((index % this.h.gtesPerGt) * 4) * 512 : 0;
      if (other === 0 || other >= this.file.size) throw corrupt(this.label, `grain ${index} at sector ${entry} is past the end of the file`);
      host = other;
    }
    return host;
  }

  private async readCompressedGrain(index: number, host: number): Promise<Buffer> {
    const limit = 2 * this.grainBytes + 4096;
    let input: Buffer;
    if (this.markers) {
      if (host + 12 > this.file.size) throw corrupt(this.label, `grain marker of grain ${index} is past the end of the file`);
      // One pread for the marker and (usually) all of the data: a grain compresses to less than itself plus a little.
      const first = await this.file.read(host, Math.min(this.file.size - host, 12 + this.grainBytes + 4096));
      const length = first.readUInt32LE(8);
      if (length === 0 || length > limit) throw corrupt(this.label, `compressed grain ${index} of ${length} bytes`);
      const available = Math.min(length, this.file.size - host - 12);
      input = available <= first.length - 12 ? first.subarray(12, 12 + available) : await this.file.read(host + 12, available);
    } else {
      input = await this.file.read(host, Math.min(limit, this.file.size - host));
    }
    let out: Buffer;
    try {
      out = await inflateZlib(input, this.grainBytes);
    } catch (err) {
      throw StrataError.corrupt(`VMDK ${this.label}: compressed grain ${index} at file offset ${host} does not inflate`, { cause: err });
    }
    const lastGrain = (index + 1) * this.grainBytes >= this.size;
    if (out.length === this.grainBytes) return out;
    // VMware may compress a disk's last grain short; anywhere else it is corruption.
    if (!lastGrain || out.length > this.grainBytes) throw corrupt(this.label, `compressed grain ${index} inflates to ${out.length} bytes, not ${this.grainBytes}`);
    const padded = Buffer.alloc(this.grainBytes);
    out.copy(padded);
    return padded;
  }
}
