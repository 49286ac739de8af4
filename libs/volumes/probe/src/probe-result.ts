export type ProbeKind = 'filesystem' | 'swap' | 'lvm2-pv' | 'luks' | 'raid' | 'partition-table' | 'unknown' | 'empty';

/** What a stretch of disk holds, by its signatures, in blkid's terms. */
export interface Probe {
  kind: ProbeKind;
  /** blkid's TYPE (ext4, xfs, vfat, swap, LVM2_member, crypto_LUKS ...); PTTYPE (gpt, dos) for a partition table; '' for empty or unknown. */
  type: string;
  /** blkid's LABEL, exactly as it prints it. */
  label?: string;
  /** blkid's UUID, exactly as it prints it (what fstab's UUID= matches). */
  uuid?: string;
  /** blkid's UUID_SUB (btrfs device uuid, md device uuid). */
  uuidSub?: string;
  /** blkid's VERSION (FAT32, 1.0, LVM2 001 ...). */
  version?: string;
  /** strata has a reader for it: ext2/3/4, xfs, btrfs, vfat, ntfs. */
  readable: boolean;
  /** More for people: the VG of a PV, a LUKS version, a RAID level. */
  detail?: string;
}

export const READABLE_TYPES: ReadonlySet<string> = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'vfat', 'ntfs']);

/** What a signature prober finds: a Probe without `readable` (derived from the type). */
export type Found = Omit<Probe, 'readable'>;
