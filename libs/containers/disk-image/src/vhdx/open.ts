import { Errno, StrataError } from '@strata/errors';
import { BlockMapLayer, TableReader, type BlockMapping } from '../block-map-layer';
import type { ChainCaches, FormatContext, OpenedLayer } from '../chain';
import type { Layer } from '../layer';
import type { FileReader } from '../store-file';
import { replayLog } from './log';
import { corrupt, readCurrentHeader, readMetadata, readRegions } from './structures';

const MiB = 1024 * 1024;
const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

// Payload block states (MS-VHDX 2.5.1.1); 5 is the 0.95 draft's "unmapped".
const NOT_PRESENT = 0;
const UNDEFINED = 1;
const ZERO = 2;
const UNMAPPED = 3;
const UNMAPPED_V095 = 5;
const FULLY_PRESENT = 6;
const PARTIALLY_PRESENT = 7;
const SB_PRESENT = 6;

/**
 * The BAT interleaves payload entries with sector-bitmap entries: after every
 * `chunkRatio` payload blocks comes the entry of the bitmap covering them.
 */
class VhdxLayer extends BlockMapLayer {
  private readonly chunkRatio: number;
  private readonly sectorsPerBlock: number;

  constructor(
    size: number,
    blockSize: number,
    private readonly logicalSectorSize: number,
    parent: Layer | undefined,
    private readonly file: FileReader,
    private readonly bat: TableReader,
    label: string,
    private readonly cacheKey: string,
    private readonly caches: ChainCaches,
  ) {
    super(size, blockSize, parent, label);
    this.chunkRatio = (2 ** 23 * logicalSectorSize) / blockSize;
    this.sectorsPerBlock = blockSize / logicalSectorSize;
  }

  static batEntries(size: number, blockSize: number, logicalSectorSize: number, hasParent: boolean): number {
    const chunkRatio = (2 ** 23 * logicalSectorSize) / blockSize;
    const blocks = Math.ceil(size / blockSize);
    if (hasParent) return Math.ceil(blocks / chunkRatio) * (chunkRatio + 1);
    return blocks + Math.floor((blocks - 1) / chunkRatio);
  }

  private async entry(index: number): Promise<{ state: number; offset: number }> {
    const e = await this.bat.entry(index);
    const lo = e.readUInt32LE(0);
    const hi = e.readUInt32LE(4);
    const offset = (hi * 2 ** 12 + (lo >>> 20)) * MiB;
    return { state: lo & 7, offset };
  }

  protected async mapBlock(index: number): Promise<BlockMapping> {
    const { state, offset } = await this.entry(index + Math.floor(index / this.chunkRatio));
    switch (state) {
      case NOT_PRESENT:
      case UNDEFINED:
        // Dynamic: undefined contents, read as zeros (as qemu); differencing: the parent's.
        return { kind: 'parent' };
      case ZERO:
      case UNMAPPED:
      case UNMAPPED_V095:
        return { kind: 'zero' };
      case FULLY_PRESENT:
      case PARTIALLY_PRESENT: {
        if (!Number.isSafeInteger(offset) || offset < MiB || offset + this.blockSize > this.file.size) {
          throw corrupt(this.label, `BAT entry for block ${index} points at file offset ${offset}, outside the file`);
        }
        if (state === FULLY_PRESENT) return { kind: 'data', file: this.file, host: offset };
        if (!this.parent) throw corrupt(this.label, `block ${index} is partially present in a disk without a parent`);
        const bitmap = await this.sectorBitmap(index);
        return { kind: 'partial', file: this.file, host: offset, sectorSize: this.logicalSectorSize, present: (s) => (bitmap[s >>> 3] & (1 << (s & 7))) !== 0 };
      }
      default:
        throw corrupt(this.label, `BAT entry for block ${index} has state ${state}`);
    }
  }

  /** The part of the chunk's sector bitmap that covers one payload block (bit 0 of byte 0 = its first sector). */
  private async sectorBitmap(index: number): Promise<Buffer> {
    const chunk = Math.floor(index / this.chunkRatio);
    const { state, offset } = await this.entry(chunk * (this.chunkRatio + 1) + this.chunkRatio);
    if (state !== SB_PRESENT) throw corrupt(this.label, `block ${index} is partially present but its sector bitmap is not`);
    if (!Number.isSafeInteger(offset) || offset < MiB || offset + MiB > this.file.size) {
      throw corrupt(this.label, `sector bitmap of chunk ${chunk} at file offset ${offset} is outside the file`);
    }
    const bytes = this.sectorsPerBlock / 8;
    const at = offset + (index % this.chunkRatio) * bytes;
    return this.caches.metadata.get(`${this.cacheKey}:sb:${at}`, () => this.file.read(at, bytes));
  }
}

export async function openVhdx(ctx: FormatContext): Promise<OpenedLayer> {
  const { label } = ctx;
  if (ctx.file.size < 1024 * 1024) throw corrupt(label, `file of ${ctx.file.size} bytes is too short`);
  const header = await readCurrentHeader(ctx.file, label);
  // A log GUID says the log may hold writes not yet in place: replay them in
  // memory (the file is never written) before reading any metadata.
  const replayed = header.logGuid === ZERO_GUID ? undefined : await replayLog(ctx.file, header, label);
  const file: FileReader = replayed ?? ctx.file;
  const regions = await readRegions(file, label);
  const meta = await readMetadata(file, regions.metadata, label);
  const entries = VhdxLayer.batEntries(meta.virtualSize, meta.blockSize, meta.logicalSectorSize, meta.hasParent);
  if (entries * 8 > regions.bat.length) throw corrupt(label, `BAT region of ${regions.bat.length} bytes holds fewer than the ${entries} entries the disk needs`);
  const bat = new TableReader(file, ctx.chain.caches.metadata, `${ctx.cacheId}:bat`, regions.bat.offset, 8, entries, `VHDX ${label}: BAT`);
  let parent: Layer | undefined;
  if (meta.hasParent) {
    const loc = meta.parentLocator;
    const relative = loc?.get('relative_path');
    if (relative === undefined) {
      const absolute = loc?.get('absolute_win32_path') ?? loc?.get('volume_path');
      if (absolute !== undefined) {
        throw new StrataError(Errno.EACCES, `VHDX ${label}: its parent is named only by an absolute path (${JSON.stringify(absolute)}); only paths relative to the image are allowed`);
      }
      throw corrupt(label, 'a differencing disk whose parent locator names no parent');
    }
    parent = await ctx.openParent(relative.replace(/\\/g, '/').replace(/^\.\//, ''), 'parent', undefined);
  }
  return {
    layer: new VhdxLayer(meta.virtualSize, meta.blockSize, meta.logicalSectorSize, parent, file, bat, label, ctx.cacheId, ctx.chain.caches),
    subformat: meta.hasParent ? 'differencing' : meta.leaveAllocated ? 'fixed' : 'dynamic',
    logicalSectorSize: meta.logicalSectorSize,
  };
}
