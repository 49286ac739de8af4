import { Errno, StrataError } from '@strata/errors';
import { crc32c } from '../crc32c';
import { guidText } from '../partitions/gpt';
import type { FileReader } from '../store-file';

/**
 * The fixed structures of a VHDX file (MS-VHDX), all little-endian: two
 * headers at 64 and 128 KiB (the current one has the higher sequence
 * number among those whose CRC-32C checks), two copies of the region table
 * at 192 and 256 KiB, and the metadata region the table points to.
 */
const KiB = 1024;
const HEADER_OFFSETS = [64 * KiB, 128 * KiB];
const REGION_TABLE_OFFSETS = [192 * KiB, 256 * KiB];
const REGION_TABLE_SIZE = 64 * KiB;
const MAX_REGION_ENTRIES = 2047;
const MAX_METADATA_ENTRIES = 2047;
/** The spec bounds the metadata region's items to 1 MiB each. */
const MAX_METADATA_ITEM = 1024 * KiB;

export const BAT_GUID = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const METADATA_GUID = '8b7ca206-4790-4b9a-b8fe-575f050f886e';
const FILE_PARAMETERS = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
const VIRTUAL_DISK_SIZE = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
const VIRTUAL_DISK_ID = 'beca12ab-b2e6-4523-93ef-c309e000c746';
const LOGICAL_SECTOR_SIZE = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
const PHYSICAL_SECTOR_SIZE = 'cda348c7-445d-4471-9cc9-e9885251c556';
const PARENT_LOCATOR = 'a8d35f2b-b30b-454d-abf7-d3d84834ab0c';
const VHDX_PARENT_LOCATOR_TYPE = 'b04aefb7-d19e-4a81-b789-25b8e9445913';
const KNOWN_METADATA = new Set([FILE_PARAMETERS, VIRTUAL_DISK_SIZE, VIRTUAL_DISK_ID, LOGICAL_SECTOR_SIZE, PHYSICAL_SECTOR_SIZE, PARENT_LOCATOR]);

export function corrupt(label: string, what: string): StrataError {
  return StrataError.corrupt(`VHDX ${label}: ${what}`);
}

/** CRC-32C of `bytes` with its checksum field (4 bytes at `at`) counted as zero. */
function crcOk(bytes: Buffer, at: number): boolean {
  const copy = Buffer.from(bytes);
  copy.writeUInt32LE(0, at);
  return crc32c(copy) === bytes.readUInt32LE(at);
}

export interface VhdxHeader {
  sequence: bigint;
  logGuid: string;
  logLength: number;
  logOffset: number;
}

export async function readCurrentHeader(file: FileReader, label: string): Promise<VhdxHeader> {
  const valid: VhdxHeader[] = [];
  const reasons: string[] = [];
  for (const offset of HEADER_OFFSETS) {
    if (offset + 4 * KiB > file.size) {
      reasons.push(`header at ${offset} is past the end of the file`);
      continue;
    }
    const h = await file.read(offset, 4 * KiB);
    if (h.subarray(0, 4).toString('latin1') !== 'head') reasons.push(`header at ${offset} has no "head" signature`);
    else if (!crcOk(h, 4)) reasons.push(`header at ${offset} fails its CRC-32C`);
    else if (h.readUInt16LE(66) !== 1) reasons.push(`header at ${offset} has version ${h.readUInt16LE(66)}`);
    else {
      valid.push({
        sequence: h.readBigUInt64LE(8),
        logGuid: guidText(h.subarray(48, 64)),
        logLength: h.readUInt32LE(68),
        logOffset: Number(h.readBigUInt64LE(72)),
      });
    }
  }
  if (valid.length === 0) throw new StrataError(Errno.EBADMSG, `VHDX ${label}: no valid header (${reasons.join('; ')})`);
  return valid.reduce((a, b) => (b.sequence > a.sequence ? b : a));
}

export interface Region {
  offset: number;
  length: number;
}

export async function readRegions(file: FileReader, label: string): Promise<{ bat: Region; metadata: Region }> {
  const reasons: string[] = [];
  for (const offset of REGION_TABLE_OFFSETS) {
    if (offset + REGION_TABLE_SIZE > file.size) {
      reasons.push(`region table at ${offset} is past the end of the file`);
      continue;
    }
    const t = await file.read(offset, REGION_TABLE_SIZE);
    if (t.subarray(0, 4).toString('latin1') !== 'regi') {
      reasons.push(`region table at ${offset} has no "regi" signature`);
      continue;
    }
    if (!crcOk(t, 4)) {
      reasons.push(`region table at ${offset} fails its CRC-32C`);
      continue;
    }
    const count = t.readUInt32LE(8);
    if (count > MAX_REGION_ENTRIES) throw corrupt(label, `region table with ${count} entries`);
    let bat: Region | undefined;
    let metadata: Region | undefined;
    for (let i = 0; i < count; i++) {
      const e = 16 + i * 32;
      const guid = guidText(t.subarray(e, e + 16));
      const region = { offset: Number(t.readBigUInt64LE(e + 16)), length: t.readUInt32LE(e + 24) };
      const required = (t.readUInt32LE(e + 28) & 1) !== 0;
      if (!Number.isSafeInteger(region.offset) || region.offset % (1024 * KiB) !== 0 || region.offset + region.length > file.size) {
        throw corrupt(label, `region ${guid} at ${region.offset} (${region.length} bytes) does not lie in the file on a 1 MiB boundary`);
      }
      if (guid === BAT_GUID) bat = region;
      else if (guid === METADATA_GUID) metadata = region;
      else if (required) throw new StrataError(Errno.EOPNOTSUPP, `VHDX ${label}: required region ${guid} is not supported`);
    }
    if (!bat || !metadata) throw corrupt(label, 'the region table lacks the BAT or the metadata region');
    return { bat, metadata };
  }
  throw new StrataError(Errno.EBADMSG, `VHDX ${label}: no valid region table (${reasons.join('; ')})`);
}

export interface VhdxMetadata {
  blockSize: number;
  leaveAllocated: boolean;
  hasParent: boolean;
  virtualSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  /** Key/value pairs of the parent locator, when there is one. */
  parentLocator: Map<string, string> | undefined;
}

export async function readMetadata(file: FileReader, region: Region, label: string): Promise<VhdxMetadata> {
  if (region.length < 64 * KiB) throw corrupt(label, `metadata region of ${region.length} bytes`);
  const table = await file.read(region.offset, 64 * KiB);
  if (table.subarray(0, 8).toString('latin1') !== 'metadata') throw corrupt(label, 'metadata table has no "metadata" signature');
  const count = table.readUInt16LE(10);
  if (count > MAX_METADATA_ENTRIES) throw corrupt(label, `metadata table with ${count} entries`);
  const items = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const e = 32 + i * 32;
    const guid = guidText(table.subarray(e, e + 16));
    const offset = table.readUInt32LE(e + 16);
    const length = table.readUInt32LE(e + 20);
    const flags = table.readUInt32LE(e + 24);
    if (length === 0) continue;
    if (offset < 64 * KiB || length > MAX_METADATA_ITEM || offset + length > region.length) {
      throw corrupt(label, `metadata item ${guid} at ${offset} (${length} bytes) is outside the metadata region`);
    }
    if (!KNOWN_METADATA.has(guid)) {
      if (flags & 4) throw new StrataError(Errno.EOPNOTSUPP, `VHDX ${label}: required metadata item ${guid} is not supported`);
      continue;
    }
    items.set(guid, await file.read(region.offset + offset, length));
  }
  const need = (guid: string, name: string, bytes: number): Buffer => {
    const item = items.get(guid);
    if (!item || item.length < bytes) throw corrupt(label, `metadata lacks the ${name} item`);
    return item;
  };
  const params = need(FILE_PARAMETERS, 'file parameters', 8);
  const blockSize = params.readUInt32LE(0);
  const flags = params.readUInt32LE(4);
  if (blockSize < 1024 * KiB || blockSize > 256 * 1024 * KiB || (blockSize & (blockSize - 1)) !== 0) throw corrupt(label, `block size ${blockSize}`);
  const size = need(VIRTUAL_DISK_SIZE, 'virtual disk size', 8).readBigUInt64LE(0);
  const logicalSectorSize = need(LOGICAL_SECTOR_SIZE, 'logical sector size', 4).readUInt32LE(0);
  const physicalSectorSize = need(PHYSICAL_SECTOR_SIZE, 'physical sector size', 4).readUInt32LE(0);
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) throw corrupt(label, `logical sector size ${logicalSectorSize}`);
  // The spec's limit is 64 TiB.
  if (size === 0n || size > 64n * 2n ** 40n || size % BigInt(logicalSectorSize) !== 0n) throw corrupt(label, `virtual disk size ${size}`);
  const hasParent = (flags & 2) !== 0;
  let parentLocator: Map<string, string> | undefined;
  if (hasParent) {
    const loc = need(PARENT_LOCATOR, 'parent locator', 20);
    const type = guidText(loc.subarray(0, 16));
    if (type !== VHDX_PARENT_LOCATOR_TYPE) throw new StrataError(Errno.EOPNOTSUPP, `VHDX ${label}: parent locator type ${type} is not supported`);
    const pairs = loc.readUInt16LE(18);
    if (20 + pairs * 12 > loc.length) throw corrupt(label, `parent locator with ${pairs} entries`);
    parentLocator = new Map();
    for (let i = 0; i < pairs; i++) {
      const e = 20 + i * 12;
      const ko = loc.readUInt32LE(e);
      const vo = loc.readUInt32LE(e + 4);
      const kl = loc.readUInt16LE(e + 8);
      const vl = loc.readUInt16LE(e + 10);
      if (ko + kl > loc.length || vo + vl > loc.length) throw corrupt(label, `parent locator entry ${i} is outside the locator`);
      parentLocator.set(loc.subarray(ko, ko + kl).toString('utf16le'), loc.subarray(vo, vo + vl).toString('utf16le'));
    }
  }
  return {
    blockSize,
    leaveAllocated: (flags & 1) !== 0,
    hasParent,
    virtualSize: Number(size),
    logicalSectorSize,
    physicalSectorSize,
    parentLocator,
  };
}
