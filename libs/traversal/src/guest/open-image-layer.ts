import type { ImageSnapshot } from '@strata/disk-image';
import { StrataError } from '@strata/errors';
import { ImageSource, type ImageSourceOptions } from '../source/image-source';
import { openSourceImage } from '../source/image-volume';
import { type DiskInventory, describeVolumes, inventoryDisk } from './disk-inventory';
import { type GuestInspection, type GuestMount, inspectGuest } from './guest-inspection';
import { GuestSource } from './guest-source';

function joinFsPath(a: string, b: string | undefined): string {
  const parts = [...a.split('/'), ...(b ?? '/').split('/')].filter((c) => c !== '' && c !== '.');
  return `/${parts.join('/')}`;
}

/** What `strata inspect` reports of a disk image: its volumes and the guest on it. */
export interface DiskReport {
  format: string;
  subformat: string | undefined;
  snapshots: readonly ImageSnapshot[];
  size: number;
  inventory: DiskInventory;
  guest: GuestInspection;
}

/** Inventories and inspects a disk image of the store (nothing is kept open). */
export async function inspectDisk(options: ImageSourceOptions): Promise<DiskReport> {
  const image = await openSourceImage(options);
  try {
    const inventory = await inventoryDisk(image, options.image);
    const guest = await inspectGuest(inventory, options.log ? { log: options.log } : {});
    return { format: image.format, subformat: image.subformat, snapshots: image.listSnapshots(), size: image.size, inventory, guest };
  } finally {
    await image.close();
  }
}

/** How a layer without `#N` is read: one volume, or the guest's composed tree. */
export type ImageLayerPlan = { kind: 'volume'; options: ImageSourceOptions } | { kind: 'guest'; options: ImageSourceOptions; mounts: GuestMount[] };

function volumeOptions(options: ImageSourceOptions, m: GuestMount): ImageSourceOptions {
  return {
    ...options,
    partition: m.volume.partition,
    ...(m.volume.logicalVolume ? { logicalVolume: m.volume.logicalVolume } : {}),
    filesystemPath: joinFsPath(m.filesystemPath, options.filesystemPath),
  };
}

/**
 * Decides what a disk image layer shows. A volume named with `#N`/`#VG/LV`
 * is read alone. Otherwise a disk holding an operating system shows the
 * guest's own tree (its root filesystem and what its fstab mounts from the
 * same disk); a disk without one shows its only filesystem, and a disk with
 * several and no OS is refused with what each volume holds.
 */
export async function planImageLayer(options: ImageSourceOptions): Promise<ImageLayerPlan> {
  if (options.partition !== undefined || options.logicalVolume) return { kind: 'volume', options };
  const report = await inspectDisk(options);
  const { inventory, guest } = report;
  if (guest.mounts.length === 1) return { kind: 'volume', options: volumeOptions(options, guest.mounts[0]) };
  if (guest.mounts.length > 1) return { kind: 'guest', options, mounts: guest.mounts };
  const readable = inventory.volumes.filter((v) => v.filesystem);
  if (readable.length === 1) {
    const v = readable[0];
    return { kind: 'volume', options: { ...options, partition: v.partition, ...(v.logicalVolume ? { logicalVolume: v.logicalVolume } : {}) } };
  }
  const problems = [...guest.problems.map((p) => `${p.where}: ${p.what}`), ...inventory.warnings].map((p) => `; ${p}`).join('');
  throw StrataError.invalid(
    `disk image ${options.image} ${readable.length === 0 ? 'holds no filesystem strata reads' : 'holds several filesystems and no operating system'}; name one with #N or #VG/LV: ${describeVolumes(inventory.volumes)}${problems}`,
  );
}

/** Opens a sealed disk image layer as planned: one filesystem, or the guest's tree. */
export async function openImageLayer(options: ImageSourceOptions): Promise<ImageSource | GuestSource> {
  const plan = await planImageLayer(options);
  return plan.kind === 'volume' ? ImageSource.open(plan.options) : GuestSource.open(plan.options, plan.mounts);
}
