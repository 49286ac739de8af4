import { Errno, StrataError } from '@strata/errors';
import type { ByteSource } from '../byte-source';
import { readGpt } from './gpt';
import { hasBootSignature, mbrEntries, readMbr } from './mbr';
import type { PartitionTable } from './partition';
import { MBR_GPT_PROTECTIVE } from './partition-types';

export interface PartitionTableOptions {
  /** The disk's logical sector size (512 or 4096); default the source's `logicalSectorSize`, else 512. */
  sectorSize?: number;
}

/** Bytes of an MBR before the disk signature and the partition entries: boot code (GRUB's stage 1, say). */
const BOOT_CODE_BYTES = 440;

/**
 * The partition table of a disk: GPT behind a protective MBR, else MBR with
 * its logical partitions, else none (a whole-disk filesystem, or nothing).
 * MBR LBAs count in the disk's logical sectors, as the kernel counts them:
 * a 4Kn disk (a VHDX with 4096-byte logical sectors) has its partitions at
 * LBA × 4096.
 */
export async function readPartitionTable(disk: ByteSource, options: PartitionTableOptions = {}): Promise<PartitionTable> {
  const sectorSize = options.sectorSize ?? disk.logicalSectorSize ?? 512;
  if (sectorSize !== 512 && sectorSize !== 4096) {
    throw new StrataError(Errno.EINVAL, `logical sector size ${sectorSize}: 512 and 4096 are supported`);
  }
  const none: PartitionTable = { scheme: 'none', sectorSize, partitions: [], warnings: [] };
  if (disk.size < 512) return none;
  const sector0 = await disk.read(0, 512);
  if (!hasBootSignature(sector0)) return none;
  const entries = mbrEntries(sector0);
  if (entries.some((e) => e.type === MBR_GPT_PROTECTIVE)) return readGpt(disk, sectorSize);
  // A boot sector that is not an MBR (a FAT volume's, say) has garbage where boot flags go.
  if (entries.some((e) => e.bootIndicator !== 0 && e.bootIndicator !== 0x80)) {
    return { ...none, warnings: ['0x55AA signature but the MBR boot indicators are invalid: not a partition table'] };
  }
  const warnings: string[] = [];
  const partitions = await readMbr(disk, sector0, warnings, sectorSize);
  if (entries.every((e) => e.sectors === 0 && e.type === 0)) {
    // A boot loader installed on a disk whose partitions were removed, or a
    // bare GRUB stage 1: a table with nothing in it, not "no table".
    const bootCode = sector0.subarray(0, BOOT_CODE_BYTES).some((b) => b !== 0);
    warnings.push(bootCode ? 'MBR boot code without partitions' : 'an empty MBR partition table');
  }
  return { scheme: 'mbr', sectorSize, partitions, warnings };
}
