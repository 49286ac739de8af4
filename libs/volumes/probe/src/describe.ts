import type { Probe } from './probe-result';

const NAMES: Record<string, string> = {
  xfs: 'XFS',
  btrfs: 'Btrfs',
  ntfs: 'NTFS',
  exfat: 'exFAT',
  hfsplus: 'HFS+',
  hfs: 'HFS',
  apfs: 'APFS',
  iso9660: 'ISO 9660',
  udf: 'UDF',
  squashfs: 'SquashFS',
  squashfs3: 'SquashFS 3',
  erofs: 'EROFS',
  f2fs: 'F2FS',
  ReFS: 'ReFS',
  jbd: 'an external ext3/ext4 journal',
  zfs_member: 'a ZFS pool member',
  BitLocker: 'a BitLocker volume (encrypted)',
};

function withLabel(name: string, p: Probe): string {
  return p.label !== undefined ? `${name} (label "${p.label}")` : name;
}

/** The phrase errors use for what a partition or volume holds: `Linux swap`, `ext4 (label "root")`, `an LVM2 physical volume (VG rhel)`. */
export function describeProbe(p: Probe): string {
  switch (p.kind) {
    case 'empty':
      return 'nothing recognisable (all zeros)';
    case 'unknown':
      return 'nothing recognisable';
    case 'swap':
      return p.type === 'swap' ? withLabel('Linux swap', p) : 'a hibernation image in swap';
    case 'lvm2-pv':
      return p.detail?.startsWith('VG ') ? `an LVM2 physical volume (${p.detail})` : 'an LVM2 physical volume';
    case 'luks':
      return 'a LUKS container (encrypted)';
    case 'raid':
      return `a Linux software RAID member${p.detail ? ` (${p.detail})` : ''}`;
    case 'partition-table':
      return p.type === 'PMBR' ? 'a protective MBR without a valid GPT' : `a partition table (${p.type === 'dos' ? 'MBR' : p.type.toUpperCase()})`;
    case 'filesystem': {
      if (p.type === 'vfat') return withLabel(p.version ? `${p.version} (vfat)` : 'FAT (vfat)', p);
      return withLabel(NAMES[p.type] ?? p.type, p);
    }
  }
}
