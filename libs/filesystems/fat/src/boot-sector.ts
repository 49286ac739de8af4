/**
 * The boot sector's BIOS parameter block and the volume geometry the kernel
 * derives from it (fs/fat/inode.c: fat_read_bpb, fat_fill_super). A field
 * the kernel refuses to mount with is refused here too: EUCLEAN naming the
 * field when the sector otherwise claims to be FAT, EINVAL when it does not.
 */
import { corrupt, notFat, unsupported } from './errors';

export type FatBits = 12 | 16 | 32;

export interface Geometry {
  fatBits: FatBits;
  sectorSize: number;
  sectorsPerCluster: number;
  clusterSize: number;
  /** Byte offset of the first FAT (the only one read, as the kernel). */
  fatOffset: number;
  /** Bytes of one FAT. */
  fatBytes: number;
  fats: number;
  /** FAT12/16: byte offset and entry count of the fixed root directory. */
  rootDirOffset: number;
  rootDirEntries: number;
  /** FAT32: the root directory's first cluster. */
  rootCluster: number;
  /** Byte offset of cluster 2. */
  dataOffset: number;
  /** Clusters 2 .. maxCluster-1 exist (the kernel's max_cluster). */
  maxCluster: number;
  totalSectors: number;
  /** The volume serial as blkid prints it, XXXX-XXXX; '' without an extended boot signature. */
  serial: string;
  /** The boot sector's label (trailing spaces removed), '' when absent or "NO NAME". */
  bootLabel: string;
}

export const BOOT_SECTOR_BYTES = 512;
const MAX_FAT12 = 0xff6;
const MAX_FAT16 = 0xfff6;
const MAX_FAT32 = 0x0ffffff6;

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
const validMedia = (m: number): boolean => m >= 0xf8 || m === 0xf0;

function ascii(b: Buffer, offset: number, length: number): string {
  return b.toString('latin1', offset, offset + length);
}

/** The sector names a FAT type in one of the places formatters write it. */
export function claimsFat(b: Buffer): boolean {
  if (b.length < BOOT_SECTOR_BYTES) return false;
  const t16 = ascii(b, 54, 8);
  const t32 = ascii(b, 82, 8);
  return t16 === 'FAT12   ' || t16 === 'FAT16   ' || t16 === 'FAT     ' || t32 === 'FAT32   ';
}

export function isExfat(b: Buffer): boolean {
  return b.length >= 11 && ascii(b, 3, 8) === 'EXFAT   ';
}

function serialOf(b: Buffer, offset: number): string {
  const hex = b.readUInt32LE(offset).toString(16).toUpperCase().padStart(8, '0');
  return `${hex.slice(0, 4)}-${hex.slice(4)}`;
}

/** An 11-byte label as blkid reports it: trailing spaces cut, "NO NAME" meaning none. */
export function labelText(raw: Buffer): string {
  if (raw.toString('latin1') === 'NO NAME    ') return '';
  const bytes = Buffer.from(raw);
  if (bytes[0] === 0x05) bytes[0] = 0xe5;
  return bytes.toString('latin1').replace(/[ \0]+$/, '');
}

/** Parses and validates the boot sector; `volumeBytes` is the source's size. */
export function parseBootSector(b: Buffer): Geometry {
  if (b.length < BOOT_SECTOR_BYTES) throw notFat(`volume smaller than a boot sector (${b.length} bytes)`);
  if (isExfat(b)) throw unsupported('exFAT is not supported');
  if (ascii(b, 3, 8) === 'NTFS    ') throw notFat('the boot sector is NTFS');
  const claimed = claimsFat(b) || b[0] === 0xeb || b[0] === 0xe9;
  const refuse = (detail: string): Error => (claimed ? corrupt('boot sector', detail) : notFat(detail));

  const sectorSize = b.readUInt16LE(11);
  const sectorsPerCluster = b[13] ?? 0;
  const reserved = b.readUInt16LE(14);
  const fats = b[16] ?? 0;
  const rootDirEntries = b.readUInt16LE(17);
  const sectors16 = b.readUInt16LE(19);
  const media = b[21] ?? 0;
  const fatLength16 = b.readUInt16LE(22);
  const totalSect32 = b.readUInt32LE(32);
  const fatLength32 = b.readUInt32LE(36);

  if (reserved === 0) throw refuse('bogus number of reserved sectors (0)');
  if (fats === 0) throw refuse('bogus number of FAT structures (0)');
  if (!validMedia(media)) throw refuse(`invalid media value (0x${media.toString(16).padStart(2, '0')})`);
  if (!isPowerOfTwo(sectorSize) || sectorSize < 512 || sectorSize > 4096) throw refuse(`bogus logical sector size ${sectorSize}`);
  if (!isPowerOfTwo(sectorsPerCluster)) throw refuse(`bogus sectors per cluster ${sectorsPerCluster}`);
  if (fatLength16 === 0 && fatLength32 === 0) throw refuse('bogus number of FAT sectors (0)');

  const isFat32 = fatLength16 === 0;
  const fatSectors = isFat32 ? fatLength32 : fatLength16;
  const entriesPerSector = sectorSize / 32;
  if (rootDirEntries % entriesPerSector !== 0) throw refuse(`bogus number of directory entries (${rootDirEntries})`);
  if (!isFat32 && rootDirEntries === 0) throw refuse('no root directory entries on FAT12/16');
  const rootDirSectors = (rootDirEntries * 32) / sectorSize;
  const rootDirStart = reserved + fats * fatSectors;
  const dataStart = rootDirStart + rootDirSectors;
  const totalSectors = sectors16 !== 0 ? sectors16 : totalSect32;
  if (totalSectors <= dataStart) throw refuse(`total sectors (${totalSectors}) leave no data area (it starts at sector ${dataStart})`);
  let totalClusters = Math.floor((totalSectors - dataStart) / sectorsPerCluster);
  const fatBits: FatBits = isFat32 ? 32 : totalClusters > MAX_FAT12 ? 16 : 12;
  const fatClusters = Math.floor((fatSectors * sectorSize * 8) / fatBits);
  totalClusters = Math.min(totalClusters, fatClusters - 2);
  const maxFat = fatBits === 32 ? MAX_FAT32 : fatBits === 16 ? MAX_FAT16 : MAX_FAT12;
  if (totalClusters > maxFat) throw refuse(`count of clusters too big (${totalClusters})`);
  if (totalClusters < 1) throw refuse(`no clusters (FAT of ${fatSectors} sectors)`);
  const maxCluster = totalClusters + 2;

  let rootCluster = 0;
  const extOffset = isFat32 ? 64 : 36;
  if (isFat32) {
    rootCluster = b.readUInt32LE(44);
    if (rootCluster < 2 || rootCluster >= maxCluster) throw refuse(`invalid root cluster ${rootCluster} (clusters 2..${maxCluster - 1})`);
  }
  const signature = b[extOffset + 2];
  const hasSerial = signature === 0x29 || signature === 0x28;
  return {
    fatBits,
    sectorSize,
    sectorsPerCluster,
    clusterSize: sectorSize * sectorsPerCluster,
    fatOffset: reserved * sectorSize,
    fatBytes: fatSectors * sectorSize,
    fats,
    rootDirOffset: rootDirStart * sectorSize,
    rootDirEntries: isFat32 ? 0 : rootDirEntries,
    rootCluster,
    dataOffset: dataStart * sectorSize,
    maxCluster,
    totalSectors,
    serial: hasSerial ? serialOf(b, extOffset + 3) : '',
    bootLabel: signature === 0x29 ? labelText(b.subarray(extOffset + 7, extOffset + 18)) : '',
  };
}
