import { Errno, StrataError } from '@strata/errors';
import { corrupt, readInt64 } from './errors';

export const BOOT_SECTOR_SIZE = 512;

export interface BootSector {
  bytesPerSector: number;
  sectorsPerCluster: number;
  clusterSize: number;
  totalSectors: number;
  /** Clusters in the volume, as ntfs-3g counts them (total sectors / sectors per cluster). */
  clusters: number;
  mftLcn: number;
  mftMirrLcn: number;
  mftRecordSize: number;
  indexRecordSize: number;
  /** The volume serial as blkid prints it: 16 upper-case hex digits. */
  serial: string;
}

/** "NTFS    " at offset 3: what detect looks for. */
export function hasNtfsMagic(sector: Buffer): boolean {
  return sector.length >= 11 && sector.toString('latin1', 3, 11) === 'NTFS    ';
}

/** Clusters-per-record fields: positive counts clusters, negative n means 2^-n bytes. */
function recordSize(raw: number, clusterSize: number, what: string): number {
  const v = raw > 127 ? raw - 256 : raw;
  if (v > 0) return v * clusterSize;
  if (v < -31 || v === 0) throw corrupt('boot sector', `${what} encoding ${v}`);
  return 2 ** -v;
}

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/** Parses and validates the boot sector the way ntfs-3g's ntfs_boot_sector_is_ntfs and parse do. */
export function parseBootSector(b: Buffer, volumeSize: number): BootSector {
  if (b.length < BOOT_SECTOR_SIZE || !hasNtfsMagic(b)) throw new StrataError(Errno.EINVAL, 'no NTFS filesystem (bad magic)');
  const bytesPerSector = b.readUInt16LE(0x0b);
  if (bytesPerSector < 256 || bytesPerSector > 4096 || !isPow2(bytesPerSector)) throw corrupt('boot sector', `bytes per sector ${bytesPerSector}`);
  const spcRaw = b[0x0d];
  // Newer Windows encode large clusters as a negative power of two.
  const sectorsPerCluster = spcRaw > 128 ? 2 ** (256 - spcRaw) : spcRaw;
  if (!isPow2(sectorsPerCluster)) throw corrupt('boot sector', `sectors per cluster ${spcRaw}`);
  const clusterSize = bytesPerSector * sectorsPerCluster;
  if (clusterSize > 2 * 1024 * 1024) throw corrupt('boot sector', `cluster size ${clusterSize}`);
  if (b.readUInt16LE(0x1fe) !== 0xaa55) throw corrupt('boot sector', 'no 0x55AA end marker');
  const totalSectors = readInt64(b, 0x28, 'boot sector');
  const mftLcn = readInt64(b, 0x30, 'boot sector');
  const mftMirrLcn = readInt64(b, 0x38, 'boot sector');
  const clusters = Math.floor(totalSectors / sectorsPerCluster);
  if (totalSectors <= 0 || clusters <= 0) throw corrupt('boot sector', `total sectors ${totalSectors}`);
  if (mftLcn <= 0 || mftLcn >= clusters || mftMirrLcn < 0 || mftMirrLcn >= clusters) {
    throw corrupt('boot sector', `$MFT at cluster ${mftLcn}, $MFTMirr at ${mftMirrLcn}, of ${clusters}`);
  }
  if (clusters * clusterSize > volumeSize + clusterSize) {
    // ntfs-3g refuses a volume larger than its device ("partition is smaller than the volume").
    throw new StrataError(Errno.EIO, `ntfs: the volume (${clusters * clusterSize} bytes) is larger than its device (${volumeSize} bytes)`);
  }
  const mftRecordSize = recordSize(b[0x40], clusterSize, 'MFT record size');
  const indexRecordSize = recordSize(b[0x44], clusterSize, 'index record size');
  if (mftRecordSize < 256 || mftRecordSize > 65536 || !isPow2(mftRecordSize)) throw corrupt('boot sector', `MFT record size ${mftRecordSize}`);
  if (indexRecordSize < 256 || indexRecordSize > 65536 || !isPow2(indexRecordSize)) throw corrupt('boot sector', `index record size ${indexRecordSize}`);
  const serial = b.readBigUInt64LE(0x48).toString(16).toUpperCase().padStart(16, '0');
  return { bytesPerSector, sectorsPerCluster, clusterSize, totalSectors, clusters, mftLcn, mftMirrLcn, mftRecordSize, indexRecordSize, serial };
}
