import { Errno, StrataError } from '@strata/errors';
import { BlockMapLayer, TableReader, type BlockMapping } from '../block-map-layer';
import type { FormatContext, OpenedLayer } from '../chain';
import type { StoreFile } from '../store-file';

/**
 * VirtualBox VDI (version 1.1): a 64-byte text pre-header, the header (all
 * little-endian), a block map of u32 entries and the blocks. Entries below
 * 0xfffffffe index a block of the data area; 0xffffffff (never written) and
 * 0xfffffffe (discarded) read as zeros, as qemu reads them.
 */
const SIGNATURE = 0xbeda107f;
const VERSION_1_1 = 0x00010001;
const TYPE_DYNAMIC = 1;
const TYPE_STATIC = 2;
const FIRST_UNALLOCATED = 0xfffffffe;
/** qemu's limits. */
const MAX_BLOCKS = 0x3fffffff;
const MAX_BLOCK_SIZE = 256 * 1024 * 1024;

function corrupt(label: string, what: string): StrataError {
  return StrataError.corrupt(`VDI ${label}: corrupt header: ${what}`);
}

class VdiLayer extends BlockMapLayer {
  constructor(
    size: number,
    blockSize: number,
    private readonly file: StoreFile,
    private readonly map: TableReader,
    private readonly dataOffset: number,
    label: string,
  ) {
    super(size, blockSize, undefined, label);
  }

  protected async mapBlock(index: number): Promise<BlockMapping> {
    const entry = (await this.map.entry(index)).readUInt32LE(0);
    // Never written: zeros, and not the file's own; discarded: zeros the file says it holds.
    if (entry === 0xffffffff) return { kind: 'parent' };
    if (entry === FIRST_UNALLOCATED) return { kind: 'zero' };
    const host = this.dataOffset + entry * this.blockSize;
    if (host + this.blockSize > this.file.size) {
      throw StrataError.corrupt(`VDI ${this.label}: block map entry ${index} points at file offset ${host}, past the end of the file`);
    }
    return { kind: 'data', file: this.file, host };
  }
}

export async function openVdi(ctx: FormatContext): Promise<OpenedLayer> {
  const { file, label } = ctx;
  if (file.size < 512) throw corrupt(label, `file of ${file.size} bytes is too short`);
  const h = await file.read(0, 512);
  if (h.readUInt32LE(64) !== SIGNATURE) throw corrupt(label, 'bad signature');
  const version = h.readUInt32LE(68);
  if (version !== VERSION_1_1) {
    throw new StrataError(Errno.EOPNOTSUPP, `VDI ${label}: version ${version >>> 16}.${version & 0xffff} is not supported (1.1 is)`);
  }
  const type = h.readUInt32LE(76);
  const linked = !h.subarray(424, 440).every((b) => b === 0) || !h.subarray(440, 456).every((b) => b === 0);
  if (type === 4 || type === 3 || linked) {
    throw new StrataError(Errno.EOPNOTSUPP, `VDI ${label}: a ${type === 3 ? 'undo' : 'differencing'} VDI (a VirtualBox snapshot over a parent named only by UUID) is not supported; export the disk with VBoxManage clonemedium`);
  }
  if (type !== TYPE_DYNAMIC && type !== TYPE_STATIC) throw corrupt(label, `image type ${type}`);
  const bmapOffset = h.readUInt32LE(340);
  const dataOffset = h.readUInt32LE(344);
  const sectorSize = h.readUInt32LE(360);
  const diskSizeRaw = h.readBigUInt64LE(368);
  const blockSize = h.readUInt32LE(376);
  const blocks = h.readUInt32LE(384);
  if (sectorSize !== 512) throw new StrataError(Errno.EOPNOTSUPP, `VDI ${label}: sector size ${sectorSize} is not supported (512 is)`);
  if (bmapOffset % 512 !== 0 || dataOffset % 512 !== 0) throw corrupt(label, `block map at ${bmapOffset}, data at ${dataOffset}: not sector-aligned`);
  if (blockSize < 512 || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) throw corrupt(label, `block size ${blockSize}`);
  if (blocks > MAX_BLOCKS) throw corrupt(label, `${blocks} blocks`);
  if (diskSizeRaw > BigInt(blocks) * BigInt(blockSize)) throw corrupt(label, `disk size ${diskSizeRaw} is more than its ${blocks} blocks hold`);
  // VBoxManage can write odd sizes; qemu rounds them up to a sector.
  const size = Math.ceil(Number(diskSizeRaw) / 512) * 512;
  const map = new TableReader(file, ctx.chain.caches.metadata, `${ctx.cacheId}:vdi`, bmapOffset, 4, blocks, `VDI ${label}: block map`);
  return {
    layer: new VdiLayer(size, blockSize, file, map, dataOffset, label),
    subformat: type === TYPE_STATIC ? 'static' : 'dynamic',
    logicalSectorSize: 512,
  };
}
