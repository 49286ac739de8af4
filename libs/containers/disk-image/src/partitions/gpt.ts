import { crc32 } from 'node:zlib';
import { StrataError } from '@strata/errors';
import type { ByteSource } from '../byte-source';
import type { Partition, PartitionTable } from './partition';
import { isLinuxFilesystemGuid } from './partition-types';

const SIGNATURE = Buffer.from('EFI PART', 'latin1');
/** More slots than any partitioning tool writes (128 is usual); larger counts are corruption. */
const MAX_ENTRIES = 16384;
const MAX_ENTRY_SIZE = 4096;
const MAX_ARRAY_BYTES = 4 * 1024 * 1024;
const ALL_SECTOR_SIZES = [512, 4096] as const;

interface GptHeader {
  lba: number;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entries: Buffer;
}

type HeaderResult = { ok: true; header: GptHeader } | { ok: false; reason: string; signature: boolean };

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** Mixed-endian GUID bytes to lower-case canonical text. */
export function guidText(b: Buffer): string {
  const hex = (from: number, to: number, reverse: boolean): string => {
    const part = Buffer.from(b.subarray(from, to));
    if (reverse) part.reverse();
    return part.toString('hex');
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

async function readHeader(disk: ByteSource, lba: number, sectorSize: number): Promise<HeaderResult> {
  const sectors = Math.floor(disk.size / sectorSize);
  if (lba < 1 || lba >= sectors) return { ok: false, reason: `LBA ${lba} is outside the disk`, signature: false };
  const sector = await disk.read(lba * sectorSize, sectorSize);
  if (!sector.subarray(0, 8).equals(SIGNATURE)) return { ok: false, reason: 'no "EFI PART" signature', signature: false };
  const fail = (reason: string): HeaderResult => ({ ok: false, reason, signature: true });
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < 92 || headerSize > sectorSize) return fail(`header size ${headerSize}`);
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== sector.readUInt32LE(16)) return fail('header CRC mismatch');
  if (u64(sector, 24) !== lba) return fail(`header says it is at LBA ${u64(sector, 24)}, not ${lba}`);
  const firstUsable = u64(sector, 40);
  const lastUsable = u64(sector, 48);
  if (firstUsable > lastUsable || lastUsable >= sectors) return fail(`usable LBAs ${firstUsable}-${lastUsable} do not fit the disk`);
  const entriesLba = u64(sector, 72);
  const entryCount = sector.readUInt32LE(80);
  const entrySize = sector.readUInt32LE(84);
  if (entrySize < 128 || entrySize > MAX_ENTRY_SIZE || entrySize % 8 !== 0) return fail(`partition entry size ${entrySize}`);
  if (entryCount > MAX_ENTRIES) return fail(`${entryCount} partition entries`);
  const arrayBytes = entryCount * entrySize;
  if (arrayBytes > MAX_ARRAY_BYTES) return fail(`partition entry array of ${arrayBytes} bytes`);
  if (entriesLba < 1 || entriesLba >= sectors || entriesLba * sectorSize + arrayBytes > disk.size) {
    return fail(`partition entry array at LBA ${entriesLba} is outside the disk`);
  }
  const entries = await disk.read(entriesLba * sectorSize, arrayBytes);
  if (crc32(entries) !== sector.readUInt32LE(88)) return fail('partition entry array CRC mismatch');
  return { ok: true, header: { lba, entriesLba, entryCount, entrySize, entries } };
}

function partitions(h: GptHeader, sectorSize: number, diskSize: number, warnings: string[]): Partition[] {
  const sectors = Math.floor(diskSize / sectorSize);
  const out: Partition[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const e = h.entries.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    const typeGuid = e.subarray(0, 16);
    if (typeGuid.every((b) => b === 0)) continue;
    const first = u64(e, 32);
    const last = u64(e, 40);
    if (first > last || last >= sectors) {
      warnings.push(`GPT partition ${i + 1} (LBA ${first}-${last}) does not fit the disk; skipped`);
      continue;
    }
    const nameBytes = e.subarray(56, Math.min(56 + 72, e.length));
    let nameEnd = 0;
    while (nameEnd + 1 < nameBytes.length && (nameBytes[nameEnd] !== 0 || nameBytes[nameEnd + 1] !== 0)) nameEnd += 2;
    const type = guidText(typeGuid);
    out.push({
      number: i + 1,
      start: first * sectorSize,
      size: (last - first + 1) * sectorSize,
      scheme: 'gpt',
      type,
      name: nameBytes.subarray(0, nameEnd).toString('utf16le'),
      uuid: guidText(e.subarray(16, 32)),
      linuxFilesystem: isLinuxFilesystemGuid(type),
    });
  }
  return out;
}

/**
 * Reads a GPT behind a protective MBR. The primary header (LBA 1) is used
 * when it and its entry array check out; otherwise the backup at the last
 * LBA, with a warning. Tries the disk's logical sector size, then the other
 * of 512 and 4096 (a GPT's header says where it is).
 */
export async function readGpt(disk: ByteSource, logicalSectorSize = 512): Promise<PartitionTable> {
  // The disk's own sector size first: a 4Kn disk's GPT is at byte 4096.
  const SECTOR_SIZES = logicalSectorSize === 4096 ? ([4096, 512] as const) : ALL_SECTOR_SIZES;
  const warnings: string[] = [];
  const reasons: string[] = [];
  const primaries = new Map<number, HeaderResult>();
  for (const ss of SECTOR_SIZES) {
    const primary = await readHeader(disk, 1, ss);
    primaries.set(ss, primary);
    if (primary.ok) {
      const backupLba = Math.floor(disk.size / ss) - 1;
      const backup = await readHeader(disk, backupLba, ss);
      if (!backup.ok) warnings.push(`backup GPT header at LBA ${backupLba} is unusable (${backup.reason})`);
      return { scheme: 'gpt', sectorSize: ss, partitions: partitions(primary.header, ss, disk.size, warnings), warnings };
    }
  }
  // A primary with a signature but bad contents tells the sector size; else try both.
  const signed = SECTOR_SIZES.filter((ss) => {
    const r = primaries.get(ss);
    return r !== undefined && !r.ok && r.signature;
  });
  for (const ss of signed.length ? signed : SECTOR_SIZES) {
    const primary = primaries.get(ss);
    const reason = primary && !primary.ok ? primary.reason : 'unreadable';
    const backupLba = Math.floor(disk.size / ss) - 1;
    const backup = await readHeader(disk, backupLba, ss);
    if (backup.ok) {
      warnings.push(`primary GPT header unusable (${reason}), used the backup header at LBA ${backupLba}`);
      return { scheme: 'gpt', sectorSize: ss, partitions: partitions(backup.header, ss, disk.size, warnings), warnings };
    }
    reasons.push(`${ss}-byte sectors: primary ${reason}, backup ${backup.reason}`);
  }
  throw StrataError.corrupt(`protective MBR but no usable GPT header (${reasons.join('; ')})`);
}
