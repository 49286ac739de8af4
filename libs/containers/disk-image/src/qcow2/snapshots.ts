import { StrataError } from '@strata/errors';
import type { StoreFile } from '../store-file';
import type { Qcow2Header } from './header';

/** One internal snapshot, as `qemu-img snapshot -l` lists it. */
export interface ImageSnapshot {
  /** The unique id string (qemu numbers them "1", "2" …). */
  id: string;
  name: string;
  /** Bytes of saved VM (RAM, device) state; 0 for a disk-only snapshot. */
  vmStateSize: number;
  /** When it was taken. */
  date: Date;
  /** Guest run time when it was taken, in nanoseconds. */
  vmClockNs: number;
  /** Virtual disk size of the snapshot (the image's current size when the entry does not record one). */
  virtualSize: number;
}

/** A snapshot with where its L1 table is. */
export interface Qcow2Snapshot extends ImageSnapshot {
  l1TableOffset: number;
  l1Size: number;
}

/** qemu's own limits on the snapshot table. */
const MAX_SNAPSHOTS = 65536;
const MAX_TABLE_BYTES = 64 * 1024 * 1024;
const MAX_EXTRA_DATA = 1024;

function corrupt(label: string, what: string): StrataError {
  return StrataError.corrupt(`qcow2 ${label}: corrupt snapshot table: ${what}`);
}

/** Reads and validates the snapshot table (entries are variable-length, each padded to 8 bytes). */
export async function readSnapshotTable(file: StoreFile, header: Qcow2Header): Promise<Qcow2Snapshot[]> {
  const label = file.label;
  const count = header.nbSnapshots;
  if (count === 0) return [];
  if (count > MAX_SNAPSHOTS) throw corrupt(label, `${count} snapshots (qemu's limit is ${MAX_SNAPSHOTS})`);
  const offset = header.snapshotsOffset;
  if (offset === 0 || offset % header.clusterSize !== 0 || offset >= file.size) throw corrupt(label, `table offset ${offset}`);
  // Entries are read in one go: the table is small and bounded by qemu's limit.
  const available = Math.min(file.size - offset, MAX_TABLE_BYTES);
  const table = await file.read(offset, available);
  const out: Qcow2Snapshot[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 40 > table.length) throw corrupt(label, `entry ${i} runs past the end of the table`);
    const l1Hi = table.readUInt32BE(at);
    const l1TableOffset = l1Hi * 2 ** 32 + table.readUInt32BE(at + 4);
    const l1Size = table.readUInt32BE(at + 8);
    const idSize = table.readUInt16BE(at + 12);
    const nameSize = table.readUInt16BE(at + 14);
    const dateSec = table.readUInt32BE(at + 16);
    const dateNsec = table.readUInt32BE(at + 20);
    const vmClockNs = Number(table.readBigUInt64BE(at + 24));
    let vmStateSize = table.readUInt32BE(at + 32);
    const extraSize = table.readUInt32BE(at + 36);
    if (extraSize > MAX_EXTRA_DATA) throw corrupt(label, `entry ${i} has ${extraSize} bytes of extra data`);
    const extra = at + 40;
    const idAt = extra + extraSize;
    const end = idAt + idSize + nameSize;
    if (end > table.length) throw corrupt(label, `entry ${i} runs past the end of the table`);
    let virtualSize = header.size;
    if (extraSize >= 8) {
      const large = table.readBigUInt64BE(extra);
      if (large > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(label, `entry ${i}: VM state size ${large}`);
      vmStateSize = Number(large);
    }
    if (extraSize >= 16) {
      const disk = table.readBigUInt64BE(extra + 8);
      if (disk > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(label, `entry ${i}: disk size ${disk}`);
      virtualSize = Number(disk);
    }
    if (!Number.isSafeInteger(l1TableOffset)) throw corrupt(label, `entry ${i}: L1 table offset`);
    out.push({
      id: table.subarray(idAt, idAt + idSize).toString('utf8'),
      name: table.subarray(idAt + idSize, end).toString('utf8'),
      vmStateSize,
      date: new Date(dateSec * 1000 + Math.floor(dateNsec / 1e6)),
      vmClockNs,
      virtualSize,
      l1TableOffset,
      l1Size,
    });
    at = end + ((8 - (end % 8)) % 8);
  }
  return out;
}

/** The snapshot a name or id means: an exact id first (as qemu's `snapshot.id`), then an exact name. */
export function findSnapshot(snapshots: readonly Qcow2Snapshot[], wanted: string): Qcow2Snapshot | undefined {
  return snapshots.find((s) => s.id === wanted) ?? snapshots.find((s) => s.name === wanted);
}

/** `1 "before-upgrade", 2 "after"` for error messages. */
export function listSnapshotNames(snapshots: readonly ImageSnapshot[]): string {
  if (snapshots.length === 0) return 'it has no internal snapshots';
  const shown = snapshots.slice(0, 20).map((s) => `${s.id} ${JSON.stringify(s.name)}`);
  return `its snapshots: ${shown.join(', ')}${snapshots.length > 20 ? `, … (${snapshots.length} in all)` : ''}`;
}
