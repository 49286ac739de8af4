import type { ByteSource } from './byte-source';
import { badChecksum, corrupt } from './errors';
import { lvmCrc } from './lvm-crc';

export const SECTOR = 512;
/** lvm2 looks for its label in the first four sectors (LABEL_SCAN_SECTORS). */
export const LABEL_SCAN_SECTORS = 4;
const LABEL_ID = Buffer.from('LABELONE', 'latin1');
const LVM2_TYPE = Buffer.from('LVM2 001', 'latin1');
const LABEL_HEADER_SIZE = 32;
const ID_LEN = 32;
/** Characters lvm2's id_valid accepts in a uuid. */
const UUID_CHARS = /^[0-9a-zA-Z!#]{32}$/;

/** A {offset, size} pair of the PV header, in bytes from the start of the PV. size 0: "to the end" (a data area) . */
export interface DiskArea {
  offset: number;
  size: number;
}

export interface PvLabel {
  /** The sector (0-3) holding the label. */
  sector: number;
  /** As lvm2 prints it: 6-4-4-4-4-4-6 characters joined by dashes. */
  uuid: string;
  /** The device size pvcreate recorded, in bytes. */
  deviceSize: number;
  dataAreas: DiskArea[];
  metadataAreas: DiskArea[];
  /** pv_header_extension version (0 when absent: written by lvm2 before 2.02.110). */
  extensionVersion: number;
  /** PV_EXT_USED (1): the PV belongs to a VG. */
  extensionFlags: number;
}

/** lvm2's 32-character id with dashes at 6, 10, 14, 18, 22, 26 (format_lvm_uuid in libblkid). */
export function formatLvmUuid(raw: string): string {
  return `${raw.slice(0, 6)}-${raw.slice(6, 10)}-${raw.slice(10, 14)}-${raw.slice(14, 18)}-${raw.slice(18, 22)}-${raw.slice(22, 26)}-${raw.slice(26)}`;
}

/** A uuid from metadata text or a label, without dashes, for comparing. */
export function bareUuid(uuid: string): string {
  return uuid.replace(/-/g, '');
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** A zero-offset-terminated list of 16-byte disk_locn entries inside the sector. */
function areaList(sector: Buffer, at: number, what: string): { areas: DiskArea[]; next: number } {
  const areas: DiskArea[] = [];
  let p = at;
  for (;;) {
    if (p + 16 > sector.length) throw corrupt(`PV header: ${what} list runs past the label sector`);
    const offset = u64(sector, p);
    const size = u64(sector, p + 8);
    p += 16;
    if (offset === 0) break;
    areas.push({ offset, size });
  }
  return { areas, next: p };
}

/**
 * One sector's label, or undefined when it holds none. A sector that has the
 * LABELONE id but fails lvm2's checks throws (EBADMSG for the CRC, EUCLEAN
 * otherwise); the caller decides whether another sector may still hold one.
 */
export function parseLabelSector(sector: Buffer, n: number): PvLabel | undefined {
  if (sector.length < SECTOR || !sector.subarray(0, 8).equals(LABEL_ID)) return undefined;
  const where = `label in sector ${n}`;
  const recorded = sector.readBigUInt64LE(8);
  if (recorded !== BigInt(n)) throw corrupt(`${where} says it is in sector ${recorded}`);
  const crc = sector.readUInt32LE(16);
  const computed = lvmCrc(sector.subarray(20, SECTOR));
  if (crc !== computed) throw badChecksum(`${where}: checksum 0x${crc.toString(16)} does not match 0x${computed.toString(16)}`);
  if (!sector.subarray(24, 32).equals(LVM2_TYPE)) {
    throw corrupt(`${where}: type "${sector.subarray(24, 32).toString('latin1')}" is not "LVM2 001"`);
  }
  const pvAt = sector.readUInt32LE(20);
  if (pvAt < LABEL_HEADER_SIZE || pvAt + ID_LEN + 8 + 32 > SECTOR) throw corrupt(`${where}: PV header offset ${pvAt}`);
  const raw = sector.subarray(pvAt, pvAt + ID_LEN).toString('latin1');
  if (!UUID_CHARS.test(raw)) throw corrupt(`${where}: PV uuid is not an lvm2 id`);
  const deviceSize = u64(sector, pvAt + ID_LEN);
  const data = areaList(sector, pvAt + ID_LEN + 8, 'data area');
  const meta = areaList(sector, data.next, 'metadata area');
  // The extension follows the two lists when it fits in the sector (pv_header_extension).
  let extensionVersion = 0;
  let extensionFlags = 0;
  if (meta.next + 8 <= SECTOR) {
    extensionVersion = sector.readUInt32LE(meta.next);
    extensionFlags = sector.readUInt32LE(meta.next + 4);
  }
  return {
    sector: n,
    uuid: formatLvmUuid(raw),
    deviceSize,
    dataAreas: data.areas,
    metadataAreas: meta.areas,
    extensionVersion,
    extensionFlags,
  };
}

/** Scans the first four sectors as lvm2's label scan does: the first sector with a valid label wins. */
export async function findLabel(source: ByteSource): Promise<PvLabel | undefined> {
  const sectors = Math.min(LABEL_SCAN_SECTORS, Math.floor(source.size / SECTOR));
  if (sectors === 0) return undefined;
  const head = await source.read(0, sectors * SECTOR);
  let failure: unknown;
  for (let n = 0; n < sectors; n++) {
    try {
      const label = parseLabelSector(head.subarray(n * SECTOR, (n + 1) * SECTOR), n);
      if (label) return label;
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure !== undefined) throw failure;
  return undefined;
}
