import { corrupt } from './errors';
import { type ConfigNode, type ConfigScalar, type ConfigSection, isSection } from './metadata-text';

/** Limits that bound the work per VG: far beyond lvm2's defaults and any real metadata. */
const MAX_PVS = 4096;
const MAX_LVS = 65536;
const MAX_SEGMENTS = 65536;
const MAX_STRIPES = 128;

export interface PvEntry {
  /** The metadata's name for it: pv0, pv1 ... */
  key: string;
  /** With dashes, as written in the metadata. */
  uuid: string;
  /** The device path lvm2 last saw it on (a hint only). */
  deviceHint: string | undefined;
  /** In 512-byte sectors, as in the metadata. */
  devSize: number;
  peStart: number;
  peCount: number;
  status: string[];
  flags: string[];
}

/** One stripe (area) of a segment: on a PV (`pv`) at an extent, or on another LV (pvmove, stacked LVs). */
export interface SegmentArea {
  name: string;
  startExtent: number;
}

export interface SegmentEntry {
  /** segment1, segment2 ... */
  key: string;
  startExtent: number;
  extentCount: number;
  type: string;
  /** For striped segments; 1 is linear. */
  stripeCount: number;
  /** In sectors; 0 for linear. */
  stripeSize: number;
  areas: SegmentArea[];
  /** The section, for types this package only names (snapshot origin, thin pool ...). */
  section: ConfigSection;
}

export interface LvEntry {
  name: string;
  uuid: string;
  status: string[];
  flags: string[];
  segments: SegmentEntry[];
  /** Why the LV's description is unusable (the rest of the VG is still read). */
  problem: string | undefined;
}

export interface VgMetadata {
  name: string;
  uuid: string;
  seqno: number;
  /** In 512-byte sectors. */
  extentSize: number;
  status: string[];
  physicalVolumes: PvEntry[];
  logicalVolumes: LvEntry[];
}

function where(path: string[]): string {
  return path.join('/');
}

export function scalarOf(section: ConfigSection, key: string): ConfigScalar | undefined {
  const v = section.entries.get(key);
  return typeof v === 'string' || typeof v === 'number' ? v : undefined;
}

function need(section: ConfigSection, key: string, path: string[]): ConfigNode {
  const v = section.entries.get(key);
  if (v === undefined) throw corrupt(`metadata ${where(path)}: no "${key}"`);
  return v;
}

export function stringField(section: ConfigSection, key: string, path: string[]): string {
  const v = need(section, key, path);
  if (typeof v !== 'string') throw corrupt(`metadata ${where(path)}: "${key}" is not a string`);
  return v;
}

/** A non-negative integer that is exact in a double. */
export function countField(section: ConfigSection, key: string, path: string[], optional?: number): number {
  const v = section.entries.get(key);
  if (v === undefined && optional !== undefined) return optional;
  if (v === undefined) throw corrupt(`metadata ${where(path)}: no "${key}"`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw corrupt(`metadata ${where(path)}: "${key}" = ${JSON.stringify(v)} is not a count`);
  return v;
}

function stringList(section: ConfigSection, key: string, path: string[]): string[] {
  const v = section.entries.get(key);
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw corrupt(`metadata ${where(path)}: "${key}" is not a list of strings`);
  return v as string[];
}

function sectionField(section: ConfigSection, key: string, path: string[]): ConfigSection | undefined {
  const v = section.entries.get(key);
  if (v === undefined) return undefined;
  if (!isSection(v)) throw corrupt(`metadata ${where(path)}: "${key}" is not a section`);
  return v;
}

/** The VG section: the one top-level section (the rest are contents, version, description ...). */
export function vgSection(root: ConfigSection): [string, ConfigSection] {
  for (const [key, node] of root.entries) if (isSection(node)) return [key, node];
  throw corrupt('metadata holds no volume group section');
}

function readPv(key: string, s: ConfigSection, path: string[]): PvEntry {
  const p = [...path, key];
  const hint = scalarOf(s, 'device');
  return {
    key,
    uuid: stringField(s, 'id', p),
    deviceHint: typeof hint === 'string' ? hint : undefined,
    devSize: countField(s, 'dev_size', p, 0),
    peStart: countField(s, 'pe_start', p),
    peCount: countField(s, 'pe_count', p),
    status: stringList(s, 'status', p),
    flags: stringList(s, 'flags', p),
  };
}

function readSegment(key: string, s: ConfigSection, path: string[]): SegmentEntry {
  const p = [...path, key];
  const type = stringField(s, 'type', p);
  const seg: SegmentEntry = {
    key,
    startExtent: countField(s, 'start_extent', p),
    extentCount: countField(s, 'extent_count', p),
    type,
    stripeCount: 0,
    stripeSize: 0,
    areas: [],
    section: s,
  };
  if (type !== 'striped') return seg;
  seg.stripeCount = countField(s, 'stripe_count', p);
  if (seg.stripeCount < 1 || seg.stripeCount > MAX_STRIPES) throw corrupt(`metadata ${where(p)}: stripe_count ${seg.stripeCount}`);
  seg.stripeSize = countField(s, 'stripe_size', p, 0);
  const list = s.entries.get('stripes');
  if (!Array.isArray(list) || list.length !== 2 * seg.stripeCount) {
    throw corrupt(`metadata ${where(p)}: "stripes" must list ${seg.stripeCount} name, extent pairs`);
  }
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i];
    const start = list[i + 1];
    if (typeof name !== 'string' || typeof start !== 'number' || !Number.isSafeInteger(start) || start < 0) {
      throw corrupt(`metadata ${where(p)}: stripe ${i / 2} is not a name, extent pair`);
    }
    seg.areas.push({ name, startExtent: start });
  }
  return seg;
}

function readLv(name: string, s: ConfigSection, path: string[]): LvEntry {
  const p = [...path, name];
  const lv: LvEntry = { name, uuid: '', status: [], flags: [], segments: [], problem: undefined };
  try {
    lv.uuid = stringField(s, 'id', p);
    lv.status = stringList(s, 'status', p);
    lv.flags = stringList(s, 'flags', p);
    for (const [key, node] of s.entries) {
      if (!isSection(node) || !key.startsWith('segment')) continue;
      if (lv.segments.length >= MAX_SEGMENTS) throw corrupt(`metadata ${where(p)}: more than ${MAX_SEGMENTS} segments`);
      lv.segments.push(readSegment(key, node, p));
    }
    lv.segments.sort((a, b) => a.startExtent - b.startExtent);
    let next = 0;
    for (const seg of lv.segments) {
      if (seg.startExtent !== next) throw corrupt(`metadata ${where(p)}: ${seg.key} starts at extent ${seg.startExtent}, expected ${next}`);
      next += seg.extentCount;
      if (!Number.isSafeInteger(next)) throw corrupt(`metadata ${where(p)}: extent count overflows`);
    }
    const declared = countField(s, 'segment_count', p, lv.segments.length);
    if (declared !== lv.segments.length) throw corrupt(`metadata ${where(p)}: segment_count ${declared} but ${lv.segments.length} segments`);
  } catch (err) {
    // Damage stays with this LV: the others are still listed and readable.
    lv.problem = err instanceof Error ? err.message : String(err);
  }
  return lv;
}

/** Interprets parsed metadata: the VG, its PVs and its LVs. */
export function readVgMetadata(root: ConfigSection): VgMetadata {
  const [name, vg] = vgSection(root);
  const path = [name];
  const extentSize = countField(vg, 'extent_size', path);
  if (extentSize === 0 || extentSize > 2 ** 32) throw corrupt(`metadata ${name}: extent_size ${extentSize}`);
  const pvs: PvEntry[] = [];
  const pvSection = sectionField(vg, 'physical_volumes', path);
  if (pvSection) {
    for (const [key, node] of pvSection.entries) {
      if (!isSection(node)) continue;
      if (pvs.length >= MAX_PVS) throw corrupt(`metadata ${name}: more than ${MAX_PVS} physical volumes`);
      pvs.push(readPv(key, node, [...path, 'physical_volumes']));
    }
  }
  const lvs: LvEntry[] = [];
  const lvSection = sectionField(vg, 'logical_volumes', path);
  if (lvSection) {
    for (const [key, node] of lvSection.entries) {
      if (!isSection(node)) continue;
      if (lvs.length >= MAX_LVS) throw corrupt(`metadata ${name}: more than ${MAX_LVS} logical volumes`);
      lvs.push(readLv(key, node, [...path, 'logical_volumes']));
    }
  }
  return {
    name,
    uuid: stringField(vg, 'id', path),
    seqno: countField(vg, 'seqno', path),
    extentSize,
    status: stringList(vg, 'status', path),
    physicalVolumes: pvs,
    logicalVolumes: lvs,
  };
}
