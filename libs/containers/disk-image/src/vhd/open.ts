import { Errno, StrataError } from '@strata/errors';
import { BlockMapLayer, TableReader, type BlockMapping } from '../block-map-layer';
import type { ChainCaches, FormatContext, OpenedLayer } from '../chain';
import type { Layer } from '../layer';
import { pushRun, type LayerRun } from '../map-range';
import type { StoreFile } from '../store-file';

/**
 * VHD (Virtual PC / Hyper-V / Azure), all big-endian: a 512-byte footer at
 * the end of the file (a copy at offset 0 for dynamic and differencing
 * disks); fixed disks are the data then the footer; dynamic and differencing
 * disks have a dynamic header, a BAT of u32 sector offsets and blocks, each a
 * sector bitmap followed by the data.
 */
const COOKIE = 'conectix';
const DYNAMIC_COOKIE = 'cxsparse';
const TYPE_FIXED = 2;
const TYPE_DYNAMIC = 3;
const TYPE_DIFFERENCING = 4;
const UNALLOCATED = 0xffffffff;
/** qemu's limit: about 2040 GiB. */
const MAX_SECTORS = 0xff000000;
const MAX_GEOMETRY = 65535 * 16 * 255;
const MAX_BLOCK_SIZE = 256 * 1024 * 1024;

function corrupt(label: string, what: string): StrataError {
  return StrataError.corrupt(`VHD ${label}: ${what}`);
}

/** One's complement of the byte sum, the checksum field counted as zero. */
function checksumOk(bytes: Buffer, at: number): boolean {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) if (i < at || i >= at + 4) sum = (sum + bytes[i]) >>> 0;
  return (~sum >>> 0) === bytes.readUInt32BE(at);
}

/**
 * Virtual PC sizes a disk by its CHS geometry, Hyper-V and most others by
 * current_size; qemu decides by the creator application, and so do we (same
 * table, so the bytes match `qemu-img convert`).
 */
function virtualSize(footer: Buffer): number {
  const chs = footer.readUInt16BE(56) * footer[58] * footer[59];
  const creator = footer.subarray(28, 32).toString('latin1');
  const useChs = !['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'].includes(creator);
  const current = footer.readBigUInt64BE(48);
  if (!useChs || chs === MAX_GEOMETRY) return current > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Math.floor(Number(current) / 512) * 512;
  return chs * 512;
}

class FixedVhdLayer implements Layer {
  constructor(
    readonly size: number,
    private readonly file: StoreFile,
  ) {}

  readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    return this.file.readInto(target, targetOffset, length, offset);
  }

  async mapRange(offset: number, length: number, out: LayerRun[]): Promise<void> {
    pushRun(out, { kind: 'data', file: this.file, fileOffset: offset, length });
  }
}

class DynamicVhdLayer extends BlockMapLayer {
  private readonly bitmapBytes: number;

  constructor(
    size: number,
    blockSize: number,
    parent: Layer | undefined,
    private readonly file: StoreFile,
    private readonly bat: TableReader,
    private readonly differencing: boolean,
    label: string,
    private readonly cacheKey: string,
    private readonly caches: ChainCaches,
  ) {
    super(size, blockSize, parent, label);
    this.bitmapBytes = Math.ceil(blockSize / 512 / 8 / 512) * 512;
  }

  protected async mapBlock(index: number): Promise<BlockMapping> {
    const sector = (await this.bat.entry(index)).readUInt32BE(0);
    if (sector === UNALLOCATED) return { kind: 'parent' };
    const bitmapAt = sector * 512;
    const host = bitmapAt + this.bitmapBytes;
    if (host + this.blockSize > this.file.size) {
      throw corrupt(this.label, `BAT entry ${index} points at file offset ${bitmapAt}, past the end of the file`);
    }
    // qemu reads a dynamic disk's allocated blocks whole (it sets every bitmap
    // bit when it allocates); a differencing disk's bitmap says which sectors
    // are its own, the rest being the parent's.
    if (!this.differencing) return { kind: 'data', file: this.file, host };
    const bitmap = await this.caches.metadata.get(`${this.cacheKey}:bm:${bitmapAt}`, () => this.file.read(bitmapAt, this.bitmapBytes));
    if (bitmap.every((b) => b === 0xff)) return { kind: 'data', file: this.file, host };
    // Sector 0 of the block is the most significant bit of byte 0.
    return { kind: 'partial', file: this.file, host, sectorSize: 512, present: (s) => (bitmap[s >>> 3] & (0x80 >>> (s & 7))) !== 0 };
  }
}

/** The parent's file name from the locators: the relative Windows path (W2ru), backslashes as separators; absolute ones (W2ku, MacX) are only reported. */
async function parentName(header: Buffer, file: StoreFile, label: string): Promise<{ name: string | undefined; absolute: string | undefined }> {
  let absolute: string | undefined;
  for (let i = 0; i < 8; i++) {
    const at = 576 + i * 24;
    const code = header.subarray(at, at + 4).toString('latin1');
    if (code === '\0\0\0\0') continue;
    const length = header.readUInt32BE(at + 8);
    const offset = Number(header.readBigUInt64BE(at + 16));
    if (length === 0 || length > 4096 || !Number.isSafeInteger(offset) || offset + length > file.size) {
      throw corrupt(label, `parent locator ${i} (${JSON.stringify(code)}) points outside the file`);
    }
    if (code !== 'W2ru' && code !== 'W2ku' && code !== 'MacX') continue;
    const data = await file.read(offset, length);
    if (code === 'W2ru') return { name: data.toString('utf16le').replace(/\0+$/, '').replace(/\\/g, '/').replace(/^\.\//, ''), absolute };
    if (code === 'W2ku') absolute ??= data.toString('utf16le').replace(/\0+$/, '');
    else absolute ??= data.toString('utf8').replace(/\0+$/, '');
  }
  return { name: undefined, absolute };
}

export async function openVhd(ctx: FormatContext): Promise<OpenedLayer> {
  const { file, label } = ctx;
  if (file.size < 512) throw corrupt(label, `file of ${file.size} bytes is too short for a footer`);
  // The copy at offset 0 (dynamic disks) first, as qemu; then the footer proper.
  let footer = await file.read(0, 512);
  let fromEnd = false;
  if (footer.subarray(0, 8).toString('latin1') !== COOKIE || !checksumOk(footer, 64)) {
    footer = await file.read(file.size - 512, 512);
    fromEnd = true;
    if (footer.subarray(0, 8).toString('latin1') !== COOKIE) throw corrupt(label, 'no "conectix" footer');
    if (!checksumOk(footer, 64)) throw new StrataError(Errno.EBADMSG, `VHD ${label}: footer checksum mismatch`);
  }
  const type = footer.readUInt32BE(60);
  const size = virtualSize(footer);
  if (size / 512 > MAX_SECTORS) throw new StrataError(Errno.EOPNOTSUPP, `VHD ${label}: a virtual size of ${size} bytes is past qemu's 2040 GiB limit`);
  if (type === TYPE_FIXED) {
    if (!fromEnd && file.size < size + 512) throw corrupt(label, 'fixed disk with a footer copy at offset 0');
    if (size > file.size - 512) throw corrupt(label, `fixed disk of ${size} bytes in a file of ${file.size}`);
    return { layer: new FixedVhdLayer(size, file), subformat: 'fixed', logicalSectorSize: 512 };
  }
  if (type !== TYPE_DYNAMIC && type !== TYPE_DIFFERENCING) throw corrupt(label, `disk type ${type}`);
  const headerOffset = footer.readBigUInt64BE(16);
  if (headerOffset > BigInt(file.size - 1024)) throw corrupt(label, `dynamic header offset ${headerOffset} is outside the file`);
  const header = await file.read(Number(headerOffset), 1024);
  if (header.subarray(0, 8).toString('latin1') !== DYNAMIC_COOKIE) throw corrupt(label, 'no "cxsparse" dynamic header');
  if (!checksumOk(header, 36)) throw new StrataError(Errno.EBADMSG, `VHD ${label}: dynamic header checksum mismatch`);
  const batOffset = header.readBigUInt64BE(16);
  const entries = header.readUInt32BE(28);
  const blockSize = header.readUInt32BE(32);
  if (blockSize < 512 || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) throw corrupt(label, `block size ${blockSize}`);
  if (entries * blockSize < size) throw corrupt(label, `a BAT of ${entries} entries is too small for ${size} bytes`);
  if (batOffset > BigInt(file.size)) throw corrupt(label, `BAT offset ${batOffset} is outside the file`);
  const bat = new TableReader(file, ctx.chain.caches.metadata, `${ctx.cacheId}:bat`, Number(batOffset), 4, Math.ceil(size / blockSize), `VHD ${label}: BAT`);
  let parent: Layer | undefined;
  const differencing = type === TYPE_DIFFERENCING;
  if (differencing) {
    const { name, absolute } = await parentName(header, file, label);
    if (name === undefined) {
      if (absolute !== undefined) {
        throw new StrataError(Errno.EACCES, `VHD ${label}: its parent is named only by an absolute path (${JSON.stringify(absolute)}); only paths relative to the image are allowed`);
      }
      throw corrupt(label, 'a differencing disk without a parent locator');
    }
    parent = await ctx.openParent(name, 'parent', undefined);
  }
  return {
    layer: new DynamicVhdLayer(size, blockSize, parent, file, bat, differencing, label, `${ctx.cacheId}`, ctx.chain.caches),
    subformat: differencing ? 'differencing' : 'dynamic',
    logicalSectorSize: 512,
  };
}
