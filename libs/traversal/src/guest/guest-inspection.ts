import type { Filesystem, FilesystemOptions, FilesystemType } from '@strata/filesystem';
import { errorMessage } from '@strata/errors';
import { openFilesystem } from '../source/filesystem-drivers';
import type { DiskInventory, DiskVolume } from './disk-inventory';
import { type FstabEntry, type VolumeSpec, entryKind, optionValue, parseFstab, parseVolumeSpec } from './fstab';
import { guestDirExists, readGuestText } from './guest-files';
import { lookupPath } from './lookup-path';
import { parseOsRelease } from './os-release';

export interface GuestOs {
  type: 'linux' | 'windows' | 'unknown';
  /** os-release ID (ubuntu, rhel, fedora, debian, ...), or "windows". */
  distribution?: string;
  /** os-release VERSION_ID. */
  version?: string;
  /** os-release PRETTY_NAME. */
  product?: string;
  hostname?: string;
}

export interface GuestFilesystem {
  volume: DiskVolume;
  type: FilesystemType;
  label: string;
  uuid: string;
  /** Where the guest mounts it ("/" for the root), undefined when it does not. */
  mountpoint?: string;
}

export interface GuestMount {
  /** Where in the guest's tree ("/", "/boot", "/boot/efi"). */
  path: string;
  volume: DiskVolume;
  /** The directory inside the filesystem mounted there ("/" except for btrfs subvolumes). */
  filesystemPath: string;
  type: FilesystemType;
  options: string[];
}

export interface GuestAbsent {
  path: string;
  spec: string;
  why: string;
}

export interface GuestProblem {
  /** The volume ("#2", "#rhel/root") or fstab line it is about. */
  where: string;
  what: string;
}

export interface GuestInspection {
  os: GuestOs;
  filesystems: GuestFilesystem[];
  /** The guest's tree: "/" first, then every mount below it, parents before children. */
  mounts: GuestMount[];
  absent: GuestAbsent[];
  problems: GuestProblem[];
}

interface OpenedFs {
  volume: DiskVolume;
  fs: Filesystem;
}

/** Top-level names a btrfs root subvolume commonly has (Fedora "root", Ubuntu/openSUSE "@"). */
const BTRFS_ROOT_GUESSES = ['root', '@', '@rootfs', 'rootfs'];

interface FoundRoot {
  opened: OpenedFs;
  /** The directory of the filesystem that is the guest's "/". */
  path: string;
  handle: number;
  os: GuestOs;
}

async function linuxAt(o: OpenedFs, path: string): Promise<FoundRoot | undefined> {
  const handle = await lookupPath(o.fs, path);
  if (handle === undefined) return undefined;
  const release = (await readGuestText(o.fs, handle, '/etc/os-release').catch(() => undefined)) ?? (await readGuestText(o.fs, handle, '/usr/lib/os-release').catch(() => undefined));
  if (release === undefined) return undefined;
  const fields = parseOsRelease(release);
  const hostnameText = await readGuestText(o.fs, handle, '/etc/hostname', 4096).catch(() => undefined);
  const hostname = hostnameText?.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  return {
    opened: o,
    path,
    handle,
    os: {
      type: 'linux',
      ...(fields.get('ID') ? { distribution: fields.get('ID') } : {}),
      ...(fields.get('VERSION_ID') ? { version: fields.get('VERSION_ID') } : {}),
      ...(fields.get('PRETTY_NAME') ? { product: fields.get('PRETTY_NAME') } : {}),
      ...(hostname ? { hostname } : {}),
    },
  };
}

async function windowsAt(o: OpenedFs): Promise<FoundRoot | undefined> {
  for (const dir of ['/Windows/System32/config', '/WINDOWS/system32/config', '/Windows/system32/config']) {
    if (await guestDirExists(o.fs, o.fs.rootHandle, dir)) {
      return { opened: o, path: '/', handle: o.fs.rootHandle, os: { type: 'windows', distribution: 'windows' } };
    }
  }
  return undefined;
}

async function findRoot(opened: readonly OpenedFs[]): Promise<FoundRoot | undefined> {
  for (const o of opened) {
    const candidates = ['/'];
    if (o.fs.type === 'btrfs') candidates.push(...BTRFS_ROOT_GUESSES.map((n) => `/${n}`));
    for (const path of candidates) {
      const found = await linuxAt(o, path).catch(() => undefined);
      if (found) return found;
    }
  }
  for (const o of opened) {
    const found = await windowsAt(o).catch(() => undefined);
    if (found) return found;
  }
  return undefined;
}

function matches(spec: VolumeSpec, o: OpenedFs | undefined, v: DiskVolume): boolean {
  switch (spec.by) {
    case 'uuid':
      return o !== undefined && o.fs.uuid.toLowerCase() === spec.value.toLowerCase();
    case 'label':
      return o !== undefined && o.fs.label === spec.value;
    case 'partlabel':
      return v.partLabel === spec.value;
    case 'partuuid':
      return v.partUuid !== undefined && v.partUuid.toLowerCase() === spec.value.toLowerCase();
    case 'lv':
      return v.logicalVolume?.vg === spec.vg && v.logicalVolume.lv === spec.lv;
    case 'partition':
      return v.partition === spec.number;
    case 'disk':
      return v.label === '0';
    case 'other':
      return false;
  }
}

function normalisePath(p: string): string {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  return `/${parts.join('/')}`;
}

/**
 * Reads a disk as `guestmount -i` would: finds the guest's root filesystem
 * (the one with /etc/os-release, or a Windows system folder), reads its
 * /etc/fstab and places every filesystem of the disk it names at its
 * mountpoint. Nothing is fatal here: what cannot be read is a problem in
 * the report.
 */
export async function inspectGuest(inventory: DiskInventory, options: FilesystemOptions = {}): Promise<GuestInspection> {
  const problems: GuestProblem[] = [];
  const opened: OpenedFs[] = [];
  for (const volume of inventory.volumes) {
    if (!volume.filesystem) continue;
    try {
      opened.push({ volume, fs: await openFilesystem(volume.bytes, volume.describe, options) });
    } catch (err) {
      problems.push({ where: `#${volume.label}`, what: errorMessage(err) });
    }
  }
  const filesystems: GuestFilesystem[] = opened.map((o) => ({ volume: o.volume, type: o.fs.type, label: o.fs.label, uuid: o.fs.uuid }));
  const root = await findRoot(opened);
  const report: GuestInspection = { os: root?.os ?? { type: 'unknown' }, filesystems, mounts: [], absent: [], problems };
  if (!root) return report;

  const mounts = new Map<string, GuestMount>();
  mounts.set('/', { path: '/', volume: root.opened.volume, filesystemPath: root.path, type: root.opened.fs.type, options: [] });
  const fstab = root.os.type === 'linux' ? await readGuestText(root.opened.fs, root.handle, '/etc/fstab').catch(() => undefined) : undefined;
  for (const e of fstab === undefined ? [] : parseFstab(fstab)) placeEntry(e, opened, inventory, mounts, report);

  report.mounts = [...mounts.values()].sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : 1));
  for (const m of report.mounts) {
    const f = filesystems.find((x) => x.volume === m.volume);
    if (f && f.mountpoint === undefined) f.mountpoint = m.path;
  }
  return report;
}

function depth(p: string): number {
  return p === '/' ? 0 : p.split('/').length - 1;
}

function placeEntry(e: FstabEntry, opened: readonly OpenedFs[], inventory: DiskInventory, mounts: Map<string, GuestMount>, report: GuestInspection): void {
  const kind = entryKind(e);
  if (kind === 'swap' || kind === 'bind') return;
  const path = normalisePath(e.file);
  if (kind === 'elsewhere') {
    if (/^[^/]+:/.test(e.spec) || e.spec.startsWith('//')) report.absent.push({ path, spec: e.spec, why: `a network filesystem (${e.vfstype})` });
    return;
  }
  const spec = parseVolumeSpec(e.spec);
  const volume = inventory.volumes.find((v) => matches(spec, opened.find((o) => o.volume === v), v));
  if (!volume) {
    report.absent.push({ path, spec: e.spec, why: 'not on this disk' });
    return;
  }
  const o = opened.find((x) => x.volume === volume);
  if (!o) {
    report.absent.push({ path, spec: e.spec, why: `${volume.describe} holds ${volume.holds}` });
    return;
  }
  let filesystemPath = '/';
  if (o.fs.type === 'btrfs') {
    const subvol = optionValue(e.options, 'subvol');
    const subvolid = optionValue(e.options, 'subvolid');
    if (subvol !== undefined) filesystemPath = normalisePath(subvol);
    else if (subvolid !== undefined && subvolid !== '5') {
      report.problems.push({ where: `fstab line ${e.line}`, what: `btrfs subvolid=${subvolid} is not resolved to a path; write subvol= instead` });
      return;
    }
  }
  if (path === '/' && mounts.get('/')?.volume === volume && filesystemPath === '/') return;
  mounts.set(path, { path, volume, filesystemPath, type: o.fs.type, options: e.options });
}
