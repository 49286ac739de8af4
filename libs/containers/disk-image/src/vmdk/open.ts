import { Errno, StrataError } from '@strata/errors';
import type { FormatContext, OpenedLayer } from '../chain';
import { MAX_VMDK_DESCRIPTOR } from '../format/detect';
import { appendRange, runLimited, type GuestRange, type Layer } from '../layer';
import { mapLayer, pushRun, type LayerRun } from '../map-range';
import type { StoreFile } from '../store-file';
import { hasParent, hexCid, parseDescriptor, type VmdkDescriptor } from './descriptor';
import { readSeSparseHeader, SeSparseExtentLayer, SESPARSE_MAGIC } from './sesparse-extent';
import { readEmbeddedDescriptor, readSparseHeader, SparseExtentLayer } from './sparse-extent';

/** createTypes that need a VMFS host or a raw device, not a file. */
const DEVICE_TYPES = new Set(['vmfsraw', 'vmfsrdm', 'vmfspassthroughrawdevicemap', 'fulldevice', 'partitioneddevice', 'vsansparse']);

interface Extent {
  start: number;
  size: number;
  layer: Layer;
  /** Sparse extents know which grains they hold; flat and zero extents hold all their bytes. */
  sparse: boolean;
}

/** A stretch [start, start+size) of the parent, as an extent's parent. */
class ParentWindow implements Layer {
  constructor(
    private readonly parent: Layer,
    private readonly start: number,
    readonly size: number,
  ) {}

  async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    const from = Math.max(0, Math.min(length, this.parent.size - (this.start + offset)));
    if (from > 0) await this.parent.readInto(target, targetOffset, this.start + offset, from);
    target.fill(0, targetOffset + from, targetOffset + length);
  }
  mapRange(offset: number, length: number, out: LayerRun[]): Promise<void> {
    return mapLayer(this.parent, this.start + offset, length, out);
  }
}

/** A flat extent: a stretch of a file; bytes past the file's end read as zeros (as qemu's file driver does). */
class FlatExtent implements Layer {
  constructor(
    private readonly file: StoreFile,
    private readonly offset: number,
    readonly size: number,
  ) {}

  async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    const inFile = Math.max(0, Math.min(length, this.file.size - (this.offset + offset)));
    if (inFile > 0) await this.file.readInto(target, targetOffset, inFile, this.offset + offset);
    target.fill(0, targetOffset + inFile, targetOffset + length);
  }
  async mapRange(offset: number, length: number, out: LayerRun[]): Promise<void> {
    const inFile = Math.max(0, Math.min(length, this.file.size - (this.offset + offset)));
    pushRun(out, { kind: 'data', file: this.file, fileOffset: this.offset + offset, length: inFile });
    pushRun(out, { kind: 'zero', length: length - inFile });
  }
}

class ZeroExtent implements Layer {
  constructor(readonly size: number) {}

  async readInto(target: Buffer, targetOffset: number, _offset: number, length: number): Promise<void> {
    target.fill(0, targetOffset, targetOffset + length);
  }
  async mapRange(_offset: number, length: number, out: LayerRun[]): Promise<void> {
    pushRun(out, { kind: 'zero', length });
  }
}

/** A VMDK disk: its extents end to end. */
class VmdkLayer implements Layer {
  readonly size: number;
  /** The descriptor's content ID, which a delta over this disk records as its parentCID. */
  cid: number | undefined;

  constructor(private readonly extents: readonly Extent[]) {
    const last = extents[extents.length - 1];
    this.size = last ? last.start + last.size : 0;
  }

  async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    const end = offset + length;
    const tasks: (() => Promise<void>)[] = [];
    for (const e of this.extents) {
      const from = Math.max(offset, e.start);
      const to = Math.min(end, e.start + e.size);
      if (from >= to) continue;
      tasks.push(() => e.layer.readInto(target, targetOffset + (from - offset), from - e.start, to - from));
    }
    await runLimited(tasks, 4);
  }
  async mapRange(offset: number, length: number, out: LayerRun[]): Promise<void> {
    const end = offset + length;
    for (const e of this.extents) {
      const from = Math.max(offset, e.start);
      const to = Math.min(end, e.start + e.size);
      if (from < to) await mapLayer(e.layer, from - e.start, to - from, out);
    }
  }
}

/** A VMDK with sparse extents, which know the grains they hold. */
class SparseVmdkLayer extends VmdkLayer {
  constructor(private readonly parts: readonly Extent[]) {
    super(parts);
  }

  async ownRanges(): Promise<GuestRange[]> {
    const out: GuestRange[] = [];
    for (const e of this.parts) {
      if (!e.sparse || !e.layer.ownRanges) {
        appendRange(out, e.start, e.size, this.size);
        continue;
      }
      for (const r of await e.layer.ownRanges()) appendRange(out, e.start + r.offset, r.length, this.size);
    }
    return out;
  }
}

/**
 * The parent a delta names. A VMDK parent must still carry the content ID
 * the delta recorded (parentCID): a different one means the parent was
 * written after the snapshot was taken, and the delta's grains no longer sit
 * on what they were written over. qemu refuses such reads (EINVAL), and so
 * does VMware.
 */
async function parentOf(ctx: FormatContext, d: VmdkDescriptor | undefined): Promise<Layer | undefined> {
  if (!d || !hasParent(d) || d.parentFileNameHint === undefined) return undefined;
  const parent = await ctx.openParent(d.parentFileNameHint, 'parent', undefined);
  const expected = hexCid(d.parentCid);
  if (parent instanceof VmdkLayer && parent.cid !== undefined && expected !== undefined && parent.cid !== expected) {
    throw new StrataError(
      Errno.EINVAL,
      `VMDK ${ctx.label}: its parent "${d.parentFileNameHint}" has content ID ${parent.cid.toString(16).padStart(8, '0')}, not the ${expected.toString(16).padStart(8, '0')} the delta was made over: the parent was written after the snapshot`,
    );
  }
  return parent;
}

function refuseType(createType: string | undefined, label: string): void {
  if (createType === undefined) return;
  const t = createType.toLowerCase();
  if (DEVICE_TYPES.has(t)) {
    throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: createType "${createType}" maps a raw device or a VMFS-only disk, which is not a file strata can read`);
  }
  if (t === 'vmfssparse') {
    throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: createType "${createType}" (ESX COWD snapshot deltas) is not supported`);
  }
}

export async function openVmdk(ctx: FormatContext): Promise<OpenedLayer> {
  const { file, label } = ctx;
  const caches = ctx.chain.caches;
  if (ctx.detected.subformat === 'vmfsSparse' && file.size >= 4 && (await file.read(0, 4)).toString('latin1') === 'COWD') {
    throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: a COWD (vmfsSparse, ESX snapshot delta) extent is not supported`);
  }
  const head = file.size >= 8 ? await file.read(0, 8) : Buffer.alloc(0);
  if (head.equals(SESPARSE_MAGIC)) {
    // An seSparse extent opened on its own: no descriptor, so no parent.
    const header = await readSeSparseHeader(file, label);
    const size = header.capacitySectors * 512;
    const layer = new SeSparseExtentLayer(size, file, header, undefined, caches, ctx.cacheId, label);
    return { layer: new SparseVmdkLayer([{ start: 0, size, layer, sparse: true }]), subformat: 'seSparse', logicalSectorSize: 512 };
  }
  const magic = head.subarray(0, 4).toString('latin1');
  if (magic === 'KDMV') {
    // A sparse file on its own (monolithicSparse, streamOptimized, a delta):
    // its header gives the capacity; the embedded descriptor only the parent.
    const header = await readSparseHeader(file, label);
    const text = await readEmbeddedDescriptor(file, header, label);
    const descriptor = text === undefined ? undefined : parseDescriptor(text, label);
    refuseType(descriptor?.createType, label);
    const parent = await parentOf(ctx, descriptor);
    const size = header.capacitySectors * 512;
    const layer = new SparseExtentLayer(size, file, header, parent, caches, ctx.cacheId, label);
    const disk = new SparseVmdkLayer([{ start: 0, size, layer, sparse: true }]);
    disk.cid = descriptor?.cid;
    return {
      layer: disk,
      subformat: descriptor?.createType ?? (header.flags & (1 << 16) ? 'streamOptimized' : 'monolithicSparse'),
      logicalSectorSize: 512,
    };
  }
  if (file.size > MAX_VMDK_DESCRIPTOR) throw StrataError.corrupt(`VMDK ${label}: a descriptor file of ${file.size} bytes`);
  const descriptor = parseDescriptor((await file.read(0, file.size)).toString('utf8'), label);
  refuseType(descriptor.createType, label);
  if (descriptor.extents.length === 0) throw StrataError.corrupt(`VMDK ${label}: the descriptor lists no extents`);
  const parent = await parentOf(ctx, descriptor);
  const extents: Extent[] = [];
  let start = 0;
  for (const [i, line] of descriptor.extents.entries()) {
    const size = line.sectors * 512;
    if (!Number.isSafeInteger(start + size)) throw StrataError.corrupt(`VMDK ${label}: extents add up past 2^53 bytes`);
    const window = parent ? new ParentWindow(parent, start, size) : undefined;
    switch (line.type) {
      case 'ZERO':
        extents.push({ start, size, layer: new ZeroExtent(size), sparse: false });
        break;
      case 'FLAT':
      case 'VMFS': {
        if (line.file === undefined) throw StrataError.corrupt(`VMDK ${label}: extent ${i + 1} (${line.type}) names no file`);
        const data = await ctx.openExtent(line.file);
        extents.push({ start, size, layer: new FlatExtent(data, line.offsetSectors * 512, size), sparse: false });
        break;
      }
      case 'SPARSE': {
        if (line.file === undefined) throw StrataError.corrupt(`VMDK ${label}: extent ${i + 1} (SPARSE) names no file`);
        const data = await ctx.openExtent(line.file);
        const header = await readSparseHeader(data, data.label);
        const layer = new SparseExtentLayer(size, data, header, window, caches, `${ctx.cacheId}:e${i}`, data.label);
        extents.push({ start, size, layer, sparse: true });
        break;
      }
      case 'SESPARSE': {
        if (line.file === undefined) throw StrataError.corrupt(`VMDK ${label}: extent ${i + 1} (SESPARSE) names no file`);
        const data = await ctx.openExtent(line.file);
        const header = await readSeSparseHeader(data, data.label);
        const layer = new SeSparseExtentLayer(size, data, header, window, caches, `${ctx.cacheId}:e${i}`, data.label);
        extents.push({ start, size, layer, sparse: true });
        break;
      }
      case 'VMFSRDM':
      case 'VMFSRAW':
        throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: extent ${i + 1} is a ${line.type} raw device mapping, which is not a file strata can read`);
      default:
        throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: extent ${i + 1} has type ${line.type}, which is not supported (FLAT, VMFS, SPARSE, SESPARSE and ZERO are)`);
    }
    start += size;
  }
  // Flat and zero extents only: every byte is the disk's own, as for a raw image.
  const layer = extents.some((e) => e.sparse) ? new SparseVmdkLayer(extents) : new VmdkLayer(extents);
  layer.cid = descriptor.cid;
  return { layer, subformat: descriptor.createType, logicalSectorSize: 512 };
}
