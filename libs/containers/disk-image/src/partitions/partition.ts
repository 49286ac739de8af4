export interface Partition {
  /** As Linux numbers it: GPT slot index + 1 (slots keep their numbers, empty slots skipped but not renumbered); MBR primaries 1-4, logical partitions of an extended one from 5 in chain order. */
  number: number;
  /** Byte offset and size within the disk. */
  start: number;
  size: number;
  scheme: 'gpt' | 'mbr';
  /** GPT partition type GUID (lower-case canonical text) or MBR type byte. */
  type: string | number;
  /** GPT partition name (UTF-16LE decoded), '' for MBR. */
  name: string;
  /**
   * PARTUUID as blkid prints it (what fstab's PARTUUID= names): the GPT
   * unique partition GUID, or for MBR the disk signature and the partition
   * number, `1a2b3c4d-02`.
   */
  uuid: string;
  /** True for GPT Linux filesystem data (0fc63daf-8483-4772-8e79-3d69d8477de4) and the Linux root/usr/home/srv partition types of the Discoverable Partitions Specification; MBR 0x83. */
  linuxFilesystem: boolean;
}

export interface PartitionTable {
  scheme: 'gpt' | 'mbr' | 'none';
  sectorSize: number;
  partitions: Partition[];
  /** e.g. "primary GPT header CRC mismatch, used the backup header" */
  warnings: string[];
}
