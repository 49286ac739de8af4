import type { ByteSource } from '../byte-source';
import { readGpt } from './gpt';
import { hasBootSignature, mbrEntries, readMbr } from './mbr';
import type { PartitionTable } from './partition';
import { MBR_GPT_PROTECTIVE } from './partition-types';

/**
 * The partition table of a disk: GPT behind a protective MBR, else MBR with
 * its logical partitions, else none (a whole-disk filesystem, or nothing).
 */
export async function readPartitionTable(disk: ByteSource): Promise<PartitionTable> {
  const none: PartitionTable = { scheme: 'none', sectorSize: 512, partitions: [], warnings: [] };
  if (disk.size < 512) return none;
  const sector0 = await disk.read(0, 512);
  if (!hasBootSignature(sector0)) return none;
  const entries = mbrEntries(sector0);
  if (entries.some((e) => e.type === MBR_GPT_PROTECTIVE)) return readGpt(disk);
  // A boot sector that is not an MBR (a FAT volume's, say) has garbage where boot flags go.
  if (entries.some((e) => e.bootIndicator !== 0 && e.bootIndicator !== 0x80)) {
    return { ...none, warnings: ['0x55AA signature but the MBR boot indicators are invalid: not a partition table'] };
  }
  const warnings: string[] = [];
  const partitions = await readMbr(disk, sector0, warnings);
  return { scheme: 'mbr', sectorSize: 512, partitions, warnings };
}
