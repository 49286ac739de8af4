import { Errno, StrataError } from '@strata/errors';
import type { FormatContext, OpenedLayer } from '../chain';
import type { ImageFormat } from '../format/detect';
import type { Layer } from '../layer';
import { parseQcow2Header } from './header';
import { Qcow2Layer } from './image';
import { findSnapshot, listSnapshotNames, readSnapshotTable, type Qcow2Snapshot } from './snapshots';

/** qemu's driver names for the formats a backing file may have. */
const BACKING_FORMATS: Record<string, ImageFormat> = { raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vhdx: 'vhdx', vpc: 'vhd', vdi: 'vdi' };

export interface Qcow2Opened extends OpenedLayer {
  snapshots: Qcow2Snapshot[];
  snapshot: Qcow2Snapshot | undefined;
}

/**
 * Opens a qcow2 image over its backing chain; with `snapshot`, the internal
 * snapshot of that name or id instead of the active state (its own L1 table
 * and virtual size, over the same backing file, as qemu reads it).
 */
export async function openQcow2(ctx: FormatContext, snapshot: string | undefined): Promise<Qcow2Opened> {
  const { file, label } = ctx;
  const header = await parseQcow2Header((n) => file.read(0, n), file.size, label);
  const snapshots = await readSnapshotTable(file, header);
  let chosen: Qcow2Snapshot | undefined;
  if (snapshot !== undefined) {
    chosen = findSnapshot(snapshots, snapshot);
    if (!chosen) throw new StrataError(Errno.ENOENT, `qcow2 ${label} has no snapshot ${JSON.stringify(snapshot)}; ${listSnapshotNames(snapshots)}`);
  }
  let backing: Layer | undefined;
  if (header.backingName !== undefined) {
    let backingFormat: ImageFormat | undefined;
    if (header.backingFormat !== undefined) {
      backingFormat = BACKING_FORMATS[header.backingFormat];
      if (!backingFormat) {
        throw new StrataError(Errno.EOPNOTSUPP, `backing file "${header.backingName}" of ${label} has format "${header.backingFormat}", which is not supported`);
      }
    }
    backing = await ctx.openParent(header.backingName, 'backing file', backingFormat);
  }
  // qemu swaps in the snapshot's L1 table and keeps the current virtual size.
  const view = chosen ? { ...header, l1TableOffset: chosen.l1TableOffset, l1Size: chosen.l1Size } : header;
  return {
    layer: new Qcow2Layer(file, view, backing, ctx.chain.caches, ctx.cacheId, chosen !== undefined),
    subformat: `v${header.version}`,
    logicalSectorSize: 512,
    snapshots,
    snapshot: chosen,
  };
}
