import { Errno, StrataError } from '@strata/errors';

export type ImageFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhdx' | 'vhd' | 'vdi';

export const IMAGE_FORMATS: readonly ImageFormat[] = ['raw', 'qcow2', 'vmdk', 'vhdx', 'vhd', 'vdi'];

/** What a file's magic says it is. */
export interface DetectedFormat {
  format: ImageFormat;
  /** e.g. VMDK createType (monolithicSparse, streamOptimized …), VHD/VHDX fixed | dynamic | differencing, VDI dynamic | static. */
  subformat: string | undefined;
}

/** Positional reads of the file being probed. */
export type ProbeRead = (offset: number, length: number) => Promise<Buffer>;

const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
const VMDK_SPARSE_MAGIC = Buffer.from('KDMV', 'latin1');
const VMDK_COWD_MAGIC = Buffer.from('COWD', 'latin1');
/** An seSparse extent's constant header magic, 0xcafebabe as a little-endian u64. */
const VMDK_SESPARSE_MAGIC = Buffer.from([0xbe, 0xba, 0xfe, 0xca, 0, 0, 0, 0]);
const VHDX_MAGIC = Buffer.from('vhdxfile', 'latin1');
const VHD_COOKIE = Buffer.from('conectix', 'latin1');
const VDI_SIGNATURE = 0xbeda107f;
/** A descriptor is text; more than this is not one. */
export const MAX_VMDK_DESCRIPTOR = 1024 * 1024;

export const FORMAT_NAMES: Record<ImageFormat, string> = { raw: 'raw', qcow2: 'qcow2', vmdk: 'VMDK', vhdx: 'VHDX', vhd: 'VHD', vdi: 'VDI' };

/** The createType of a VMDK descriptor's text, if it says one. */
export function vmdkCreateType(text: string): string | undefined {
  const m = /^\s*createType\s*=\s*"?([^"\r\n]*)"?\s*$/m.exec(text);
  return m ? m[1].trim() : undefined;
}

/** Whether the text at the start of a file is a VMDK descriptor (as qemu's probe: a "# Disk DescriptorFile" line, or version= and createType= lines). */
export function looksLikeVmdkDescriptor(head: Buffer): boolean {
  const text = head.toString('latin1');
  if (text.startsWith('# Disk DescriptorFile')) return true;
  if (head.includes(0)) return false;
  return /^\s*version\s*=\s*\d/m.test(text) && /^\s*createType\s*=/m.test(text);
}

const VHD_TYPES: Record<number, string> = { 2: 'fixed', 3: 'dynamic', 4: 'differencing' };

/**
 * The format of an image by its magic: qcow2 'QFI\xfb'; VMDK 'KDMV' (hosted
 * sparse), 'COWD' (VMFS sparse) or a descriptor text; VHDX 'vhdxfile'; VDI
 * signature 0xbeda107f at 64; an seSparse extent 0xcafebabe; VHD 'conectix' at 0 (the dynamic footer copy)
 * or in the last 512 bytes (fixed); anything else is raw.
 */
export async function detectFormatOf(read: ProbeRead, size: number): Promise<DetectedFormat> {
  const head = await read(0, Math.min(size, 4096));
  const at = (magic: Buffer, offset = 0): boolean => head.length >= offset + magic.length && head.subarray(offset, offset + magic.length).equals(magic);
  if (at(QCOW2_MAGIC)) return { format: 'qcow2', subformat: head.length >= 8 ? `v${head.readUInt32BE(4)}` : undefined };
  if (at(VHDX_MAGIC)) return { format: 'vhdx', subformat: undefined };
  if (at(VMDK_COWD_MAGIC)) return { format: 'vmdk', subformat: 'vmfsSparse' };
  if (at(VMDK_SESPARSE_MAGIC)) return { format: 'vmdk', subformat: 'seSparse' };
  if (at(VMDK_SPARSE_MAGIC)) {
    if (head.length < 512) return { format: 'vmdk', subformat: undefined };
    const flags = head.readUInt32LE(8);
    const descSector = head.readBigUInt64LE(28);
    const descSectors = head.readBigUInt64LE(36);
    if (descSector > 0n && descSectors > 0n && descSectors * 512n <= BigInt(MAX_VMDK_DESCRIPTOR) && (descSector + descSectors) * 512n <= BigInt(size)) {
      const text = (await read(Number(descSector) * 512, Number(descSectors) * 512)).toString('latin1');
      const type = vmdkCreateType(text);
      if (type) return { format: 'vmdk', subformat: type };
    }
    return { format: 'vmdk', subformat: flags & (1 << 16) ? 'streamOptimized' : 'monolithicSparse' };
  }
  if (head.length >= 72 && head.readUInt32LE(64) === VDI_SIGNATURE) {
    const type = head.readUInt32LE(76);
    return { format: 'vdi', subformat: type === 1 ? 'dynamic' : type === 2 ? 'static' : type === 3 ? 'undo' : type === 4 ? 'differencing' : `type ${type}` };
  }
  if (at(VHD_COOKIE) && head.length >= 512) {
    return { format: 'vhd', subformat: VHD_TYPES[head.readUInt32BE(60)] ?? `type ${head.readUInt32BE(60)}` };
  }
  if (looksLikeVmdkDescriptor(head)) return { format: 'vmdk', subformat: vmdkCreateType(head.toString('latin1')) };
  if (size >= 1024) {
    const tail = await read(size - 512, 512);
    if (tail.subarray(0, 8).equals(VHD_COOKIE)) return { format: 'vhd', subformat: VHD_TYPES[tail.readUInt32BE(60)] ?? `type ${tail.readUInt32BE(60)}` };
  }
  return { format: 'raw', subformat: undefined };
}

/** The source kind a user names for a format (`vmdk:` …). */
export function describeFound(detected: DetectedFormat): string {
  return `${FORMAT_NAMES[detected.format]} image${detected.subformat && detected.format !== 'qcow2' ? ` (${detected.subformat})` : ''}`;
}

/** EINVAL for an image of another format than the one asked for, naming what it is and what to use. */
export function wrongFormat(describe: string, expected: ImageFormat, detected: DetectedFormat): StrataError {
  if (detected.format === 'raw') {
    return new StrataError(
      Errno.EINVAL,
      `${describe} is not a ${FORMAT_NAMES[expected]} image (no ${FORMAT_NAMES[expected]} signature; it reads as raw): use raw: or image:`,
    );
  }
  return new StrataError(Errno.EINVAL, `${describe} is a ${describeFound(detected)}: use ${detected.format}: or image:`);
}
