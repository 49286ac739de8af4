import { Errno, StrataError } from '@strata/errors';
import type { ByteSource } from './byte-source';
import { guardedSync } from './errors';
import { bareUuid } from './label';
import type { PhysicalVolume } from './physical-volume';
import type { LvEntry, SegmentEntry, VgMetadata } from './vg-metadata';
import { scalarOf } from './vg-metadata';

export const SECTOR_BYTES = 512;

export interface VgPhysicalVolume {
  /** pv0, pv1 ... as the metadata names it. */
  key: string;
  uuid: string;
  /** Where its bytes are; undefined when no source given carries this PV's label. */
  source: ByteSource | undefined;
  /** The metadata marks it MISSING, or no source was found for it. */
  missing: boolean;
  deviceHint: string | undefined;
  /** First extent, in bytes from the start of the PV. */
  peStart: number;
  peCount: number;
  /** The size the metadata records, in bytes. */
  devSize: number;
}

export interface LogicalVolumeInfo {
  name: string;
  uuid: string;
  /** In bytes. */
  size: number;
  extents: number;
  /** Segment types in LV order, each once: striped is "linear" for one stripe (as lvs prints it). */
  segmentTypes: string[];
  /** Hidden LVs are components of others (thin pool data, RAID images, COW snapshots' internals). */
  visible: boolean;
  /** openLogicalVolume will give its bytes. */
  readable: boolean;
  /** Why not, when not readable: the message openLogicalVolume throws. */
  reason: string | undefined;
  /** e.g. "origin of snapshot snap1" */
  notes: string[];
}

export interface VolumeGroup {
  name: string;
  uuid: string;
  seqno: number;
  /** In bytes. */
  extentSize: number;
  physicalVolumes: VgPhysicalVolume[];
  logicalVolumes: LogicalVolumeInfo[];
  /** Metadata copies that disagree, PVs seen twice or missing, and the PVs' own warnings. */
  warnings: string[];
  /** The metadata used (the newest seqno among the PVs). */
  metadata: VgMetadata;
}

export interface PvWithSource {
  source: ByteSource;
  pv: PhysicalVolume;
}

/** What strata calls a segment type it refuses, by lvm2's type name. */
function featureName(type: string): string {
  if (type === 'thin-pool') return 'a thin pool';
  if (type === 'thin') return 'a thin volume';
  if (type.startsWith('raid')) return `RAID (${type})`;
  if (type === 'mirror') return 'a mirror';
  if (type === 'cache' || type === 'cache-pool') return 'a cache';
  if (type === 'writecache') return 'a writecache';
  if (type === 'snapshot') return 'a COW snapshot';
  if (type === 'vdo' || type === 'vdo-pool') return 'VDO';
  if (type === 'integrity') return 'dm-integrity';
  if (type === 'error') return 'the error target';
  return 'an unknown segment type';
}

function displayType(seg: SegmentEntry): string {
  return seg.type === 'striped' && seg.stripeCount === 1 ? 'linear' : seg.type;
}

interface SnapshotRoles {
  /** COW store LV name → the snapshot description. */
  cowOf: Map<string, { snapshot: string; origin: string }>;
  /** Origin LV name → its snapshots' COW store names. */
  originOf: Map<string, { cow: string; merging: boolean }[]>;
}

/** Old-style (COW) snapshots: a hidden snapshotN LV whose one segment names the origin and the COW store. */
function snapshotRoles(meta: VgMetadata): SnapshotRoles {
  const roles: SnapshotRoles = { cowOf: new Map(), originOf: new Map() };
  for (const lv of meta.logicalVolumes) {
    for (const seg of lv.segments) {
      if (seg.type !== 'snapshot') continue;
      const origin = scalarOf(seg.section, 'origin');
      const cow = scalarOf(seg.section, 'cow_store');
      const merging = scalarOf(seg.section, 'merging_store');
      const store = typeof cow === 'string' ? cow : typeof merging === 'string' ? merging : undefined;
      if (typeof origin !== 'string' || store === undefined) continue;
      roles.cowOf.set(store, { snapshot: lv.name, origin });
      const list = roles.originOf.get(origin) ?? [];
      list.push({ cow: store, merging: typeof merging === 'string' });
      roles.originOf.set(origin, list);
    }
  }
  return roles;
}

/** The refusal for an LV strata cannot read, or undefined. Missing PVs are EIO, the rest EOPNOTSUPP or EUCLEAN. */
function refusal(vg: { name: string; extentSize: number; physicalVolumes: VgPhysicalVolume[]; metadata: VgMetadata }, lv: LvEntry, roles: SnapshotRoles): StrataError | undefined {
  const id = `LV ${vg.name}/${lv.name}`;
  if (lv.problem !== undefined) return new StrataError(Errno.EUCLEAN, `${id}: ${lv.problem}`);
  const unsupported = (why: string): StrataError => new StrataError(Errno.EOPNOTSUPP, `${id}: ${why}`);
  for (const seg of lv.segments) {
    if (seg.type !== 'striped' && seg.type !== 'zero') return unsupported(`segment type "${seg.type}" (${featureName(seg.type)}) is not supported`);
  }
  const cow = roles.cowOf.get(lv.name);
  if (cow) return unsupported(`is the copy-on-write store of snapshot ${cow.snapshot} of LV ${cow.origin}: COW snapshots ("snapshot" segments) are not supported`);
  if (roles.originOf.get(lv.name)?.some((s) => s.merging)) return unsupported('a snapshot merge into this origin is in progress ("snapshot" segment merging): not supported');
  if (!lv.status.includes('VISIBLE')) return unsupported('is a hidden LV (an internal component of another LV), not readable on its own');
  const pvs = new Map(vg.physicalVolumes.map((p) => [p.key, p]));
  const lvNames = new Set(vg.metadata.logicalVolumes.map((l) => l.name));
  for (const seg of lv.segments) {
    if (seg.type !== 'striped') continue;
    if (seg.extentCount % seg.stripeCount !== 0) {
      return new StrataError(Errno.EUCLEAN, `${id}: ${seg.key}: ${seg.extentCount} extents do not divide into ${seg.stripeCount} stripes`);
    }
    if (seg.stripeCount > 1 && (seg.stripeSize < 8 || seg.stripeSize > 2 ** 31)) {
      return new StrataError(Errno.EUCLEAN, `${id}: ${seg.key}: stripe_size ${seg.stripeSize} sectors`);
    }
    const perStripe = seg.extentCount / seg.stripeCount;
    for (const area of seg.areas) {
      const pv = pvs.get(area.name);
      if (!pv) {
        if (lvNames.has(area.name)) return unsupported(`${seg.key} lies on LV ${area.name} (a pvmove in progress or a stacked LV), not on a PV: not supported`);
        return new StrataError(Errno.EUCLEAN, `${id}: ${seg.key} names ${area.name}, which is neither a PV nor an LV of the VG`);
      }
      if (pv.missing || !pv.source) return new StrataError(Errno.EIO, `${id}: PV ${pv.key} (uuid ${pv.uuid}) is missing`);
      if (area.startExtent + perStripe > pv.peCount) {
        return new StrataError(Errno.EUCLEAN, `${id}: ${seg.key}: extents ${area.startExtent}-${area.startExtent + perStripe - 1} of PV ${pv.key} are beyond its ${pv.peCount} extents`);
      }
      const end = pv.peStart + (area.startExtent + perStripe) * vg.extentSize;
      if (!Number.isSafeInteger(end) || end > pv.source.size) {
        return new StrataError(Errno.EUCLEAN, `${id}: ${seg.key}: extents ${area.startExtent}-${area.startExtent + perStripe - 1} of PV ${pv.key} lie outside the device (${pv.source.size} bytes)`);
      }
    }
  }
  const size = lv.segments.reduce((n, s) => n + s.extentCount, 0) * vg.extentSize;
  if (!Number.isSafeInteger(size)) return new StrataError(Errno.EUCLEAN, `${id}: size overflows`);
  return undefined;
}

function lvInfo(vg: VolumeGroup, lv: LvEntry, roles: SnapshotRoles): LogicalVolumeInfo {
  const why = refusal(vg, lv, roles);
  const extents = lv.problem === undefined ? lv.segments.reduce((n, s) => n + s.extentCount, 0) : 0;
  const notes: string[] = [];
  for (const s of roles.originOf.get(lv.name) ?? []) notes.push(`origin of snapshot ${s.cow}${s.merging ? ' (merging)' : ''}`);
  return {
    name: lv.name,
    uuid: lv.uuid,
    size: Number.isSafeInteger(extents * vg.extentSize) ? extents * vg.extentSize : 0,
    extents,
    segmentTypes: [...new Set(lv.segments.map(displayType))],
    visible: lv.status.includes('VISIBLE'),
    readable: why === undefined,
    reason: why?.message,
    notes,
  };
}

/**
 * Groups PVs into their VGs by VG uuid (a VG spanning partitions of one disk
 * or several disks), takes the newest metadata (highest seqno) among them,
 * and resolves the metadata's pv0, pv1 ... to the sources by PV uuid. A PV
 * without metadata of its own joins the VG whose metadata lists it; PVs no
 * metadata lists are left out. Sorted by VG name.
 */
export function assembleVolumeGroups(pvs: readonly PvWithSource[]): VolumeGroup[] {
  return guardedSync('assembleVolumeGroups', () => {
    const byUuid = new Map<string, PvWithSource>();
    const duplicates: string[] = [];
    for (const entry of pvs) {
      const key = bareUuid(entry.pv.uuid);
      if (byUuid.has(key)) duplicates.push(entry.pv.uuid);
      else byUuid.set(key, entry);
    }
    const groups = new Map<string, PvWithSource[]>();
    for (const entry of byUuid.values()) {
      const m = entry.pv.metadata;
      if (!m) continue;
      const list = groups.get(m.vgUuid) ?? [];
      list.push(entry);
      groups.set(m.vgUuid, list);
    }
    const out: VolumeGroup[] = [];
    for (const [vgUuid, members] of groups) {
      const newest = members.reduce((a, b) => ((b.pv.metadata?.seqno ?? 0) > (a.pv.metadata?.seqno ?? 0) ? b : a)).pv.metadata;
      if (!newest) continue;
      const meta = newest.vg;
      const warnings: string[] = [];
      for (const m of members) {
        const seqno = m.pv.metadata?.seqno;
        if (seqno !== newest.seqno) warnings.push(`PV ${m.pv.uuid} holds VG ${meta.name} metadata seqno ${seqno}, another PV ${newest.seqno}: used seqno ${newest.seqno}`);
        for (const w of m.pv.warnings) warnings.push(`PV ${m.pv.uuid}: ${w}`);
      }
      const physicalVolumes: VgPhysicalVolume[] = meta.physicalVolumes.map((p) => {
        const found = byUuid.get(bareUuid(p.uuid));
        const usable = found && (found.pv.metadata === undefined || found.pv.metadata.vgUuid === vgUuid) ? found : undefined;
        const flagged = p.flags.includes('MISSING') || p.status.includes('MISSING');
        if (!usable) warnings.push(`PV ${p.key} (uuid ${p.uuid}${p.deviceHint ? `, last seen as ${p.deviceHint}` : ''}) is missing`);
        return {
          key: p.key,
          uuid: p.uuid,
          source: usable?.source,
          missing: flagged || !usable,
          deviceHint: p.deviceHint,
          peStart: p.peStart * SECTOR_BYTES,
          peCount: p.peCount,
          devSize: p.devSize * SECTOR_BYTES,
        };
      });
      const listed = new Set(meta.physicalVolumes.map((p) => bareUuid(p.uuid)));
      for (const m of members) {
        if (!listed.has(bareUuid(m.pv.uuid))) warnings.push(`PV ${m.pv.uuid} claims VG ${meta.name} but its newest metadata does not list it`);
      }
      for (const d of duplicates) if (listed.has(bareUuid(d))) warnings.push(`PV ${d} was given twice; the first source is used`);
      const vg: VolumeGroup = {
        name: meta.name,
        uuid: meta.uuid,
        seqno: meta.seqno,
        extentSize: meta.extentSize * SECTOR_BYTES,
        physicalVolumes,
        logicalVolumes: [],
        warnings,
        metadata: meta,
      };
      const roles = snapshotRoles(meta);
      vg.logicalVolumes = meta.logicalVolumes.map((lv) => lvInfo(vg, lv, roles));
      out.push(vg);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  });
}

/** The refusal openLogicalVolume would throw for this LV, computed afresh (for callers holding a VolumeGroup). */
export function logicalVolumeRefusal(vg: VolumeGroup, lvName: string): StrataError | undefined {
  const lv = vg.metadata.logicalVolumes.find((l) => l.name === lvName);
  if (!lv) return StrataError.notFound(`VG ${vg.name} has no LV ${lvName}; its LVs: ${vg.metadata.logicalVolumes.map((l) => l.name).join(', ') || 'none'}`);
  return refusal(vg, lv, snapshotRoles(vg.metadata));
}
