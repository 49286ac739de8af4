import { Errno, StrataError, isStrataError } from '@strata/errors';
import { type ByteSource, readChecked } from './byte-source';
import { badChecksum, corrupt, guarded } from './errors';
import { type DiskArea, type PvLabel, findLabel } from './label';
import { lvmCrc } from './lvm-crc';
import { MDA_HEADER_SIZE, RAW_LOCN_IGNORED, parseMdaHeader } from './mda-header';
import { type ConfigSection, MAX_TEXT_BYTES, parseMetadataText } from './metadata-text';
import { type VgMetadata, readVgMetadata } from './vg-metadata';

/** The metadata of one metadata area, as lvm2 reads it. */
export interface PvMetadata {
  /** Which metadata area (index into PvLabel.metadataAreas) it came from. */
  area: number;
  seqno: number;
  vgName: string;
  vgUuid: string;
  /** The text as stored (trailing NULs removed). */
  text: string;
  checksum: number;
  config: ConfigSection;
  vg: VgMetadata;
}

export interface PhysicalVolume extends PvLabel {
  /** The newest valid metadata of its metadata areas; undefined for a PV without any (pvcreate --metadatacopies 0, or all ignored). */
  metadata: PvMetadata | undefined;
  /** A metadata area that is corrupt or disagrees with the one used. */
  warnings: string[];
}

type AreaResult = { kind: 'ok'; metadata: PvMetadata } | { kind: 'none'; reason: string } | { kind: 'bad'; error: StrataError };

async function readArea(source: ByteSource, area: DiskArea, index: number): Promise<AreaResult> {
  const what = `metadata area ${index + 1} at offset ${area.offset}`;
  try {
    const sector = await readChecked(source, area.offset, MDA_HEADER_SIZE, what);
    const parsed = parseMdaHeader(sector, area.offset);
    if (!parsed.ok) return { kind: 'bad', error: parsed.checksum ? badChecksum(`${what}: ${parsed.reason}`) : corrupt(`${what}: ${parsed.reason}`) };
    const mda = parsed.header;
    if (area.offset + mda.size > source.size) return { kind: 'bad', error: corrupt(`${what}: area of ${mda.size} bytes runs past the device`) };
    const slot = mda.locations[0];
    if (!slot || (slot.offset === 0 && slot.size === 0)) return { kind: 'none', reason: `${what} holds no metadata` };
    if (slot.flags & RAW_LOCN_IGNORED) return { kind: 'none', reason: `${what} is ignored (metadataignore)` };
    if (slot.offset < MDA_HEADER_SIZE || slot.offset >= mda.size || slot.size > mda.size - MDA_HEADER_SIZE || slot.size > MAX_TEXT_BYTES) {
      return { kind: 'bad', error: corrupt(`${what}: metadata location (offset ${slot.offset}, size ${slot.size}) is outside the area of ${mda.size} bytes`) };
    }
    // The text is a circular buffer after the header: what does not fit continues right after the header.
    const wrap = Math.max(0, slot.offset + slot.size - mda.size);
    const first = await readChecked(source, area.offset + slot.offset, slot.size - wrap, what);
    const second = wrap ? await readChecked(source, area.offset + MDA_HEADER_SIZE, wrap, what) : Buffer.alloc(0);
    const checksum = lvmCrc(second, lvmCrc(first));
    if (checksum !== slot.checksum) {
      return { kind: 'bad', error: badChecksum(`${what}: metadata checksum 0x${checksum.toString(16)} does not match 0x${slot.checksum.toString(16)}`) };
    }
    const bytes = Buffer.concat([first, second]);
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    const text = bytes.subarray(0, end).toString('utf8');
    const config = parseMetadataText(text);
    const vg = readVgMetadata(config);
    return { kind: 'ok', metadata: { area: index, seqno: vg.seqno, vgName: vg.name, vgUuid: vg.uuid, text, checksum, config, vg } };
  } catch (err) {
    if (isStrataError(err) && err.errno !== Errno.EIO) return { kind: 'bad', error: new StrataError(err.errno, `${what}: ${err.message}`) };
    throw err;
  }
}

/**
 * The LVM2 physical volume on a source: its label, and the VG metadata of the
 * newest valid copy among its metadata areas. Undefined when the first four
 * sectors hold no LVM2 label. A label failing its checks is EBADMSG
 * (checksum) or EUCLEAN; when every metadata area is unusable, the error of
 * the first one is thrown.
 */
export async function readPhysicalVolume(source: ByteSource): Promise<PhysicalVolume | undefined> {
  return guarded('readPhysicalVolume', async () => {
    const label = await findLabel(source);
    if (!label) return undefined;
    const warnings: string[] = [];
    const results: AreaResult[] = [];
    for (const [i, area] of label.metadataAreas.slice(0, 8).entries()) results.push(await readArea(source, area, i));
    const good = results.flatMap((r) => (r.kind === 'ok' ? [r.metadata] : []));
    const bad = results.flatMap((r) => (r.kind === 'bad' ? [r.error] : []));
    if (good.length === 0) {
      if (bad.length > 0) throw bad[0];
      return { ...label, metadata: undefined, warnings: results.flatMap((r) => (r.kind === 'none' ? [r.reason] : [])) };
    }
    const newest = good.reduce((a, b) => (b.seqno > a.seqno ? b : a));
    for (const e of bad) warnings.push(`${e.message}; used metadata area ${newest.area + 1}`);
    for (const m of good) {
      if (m === newest) continue;
      if (m.seqno !== newest.seqno) {
        warnings.push(`metadata area ${m.area + 1} has seqno ${m.seqno}, area ${newest.area + 1} has ${newest.seqno}: used seqno ${newest.seqno}`);
      } else if (m.checksum !== newest.checksum || m.vgUuid !== newest.vgUuid) {
        warnings.push(`metadata areas ${newest.area + 1} and ${m.area + 1} hold different metadata with the same seqno ${m.seqno}: used area ${newest.area + 1}`);
      }
    }
    return { ...label, metadata: newest, warnings };
  });
}
