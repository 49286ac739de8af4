import { unsupported } from './corruption';

export const Compat = {
  HAS_JOURNAL: 0x4,
  EXT_ATTR: 0x8,
  RESIZE_INODE: 0x10,
  DIR_INDEX: 0x20,
} as const;

export const Incompat = {
  COMPRESSION: 0x1,
  FILETYPE: 0x2,
  RECOVER: 0x4,
  JOURNAL_DEV: 0x8,
  META_BG: 0x10,
  EXTENTS: 0x40,
  BIT64: 0x80,
  MMP: 0x100,
  FLEX_BG: 0x200,
  EA_INODE: 0x400,
  DIRDATA: 0x1000,
  CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000,
  INLINE_DATA: 0x8000,
  ENCRYPT: 0x10000,
  CASEFOLD: 0x20000,
} as const;

export const RoCompat = {
  SPARSE_SUPER: 0x1,
  LARGE_FILE: 0x2,
  HUGE_FILE: 0x8,
  GDT_CSUM: 0x10,
  DIR_NLINK: 0x20,
  EXTRA_ISIZE: 0x40,
  BIGALLOC: 0x200,
  METADATA_CSUM: 0x400,
} as const;

/** Incompat features this reader understands; encryption is accepted here and refused per inode. */
const READABLE_INCOMPAT =
  Incompat.FILETYPE |
  Incompat.RECOVER |
  Incompat.META_BG |
  Incompat.EXTENTS |
  Incompat.BIT64 |
  Incompat.MMP |
  Incompat.FLEX_BG |
  Incompat.EA_INODE |
  Incompat.CSUM_SEED |
  Incompat.LARGEDIR |
  Incompat.INLINE_DATA |
  Incompat.ENCRYPT;

const INCOMPAT_NAMES: Record<number, string> = {
  [Incompat.COMPRESSION]: 'compression',
  [Incompat.JOURNAL_DEV]: 'journal_dev (an external journal device, not a filesystem)',
  [Incompat.DIRDATA]: 'dirdata',
  [Incompat.CASEFOLD]: 'casefold',
};

/** Refuses, naming them, the incompat features whose absence would make the answers wrong. */
export function checkFeatures(incompat: number, roCompat: number): void {
  const unknown = incompat & ~READABLE_INCOMPAT;
  const names: string[] = [];
  for (let i = 0; i < 32; i++) {
    const bit = 2 ** i;
    if ((unknown >>> i) & 1) names.push(INCOMPAT_NAMES[bit] ?? `incompat 0x${bit.toString(16)}`);
  }
  // bigalloc changes the unit of every allocation count and of statfs; not handled yet.
  if (roCompat & RoCompat.BIGALLOC) names.push('bigalloc');
  if (names.length > 0) throw unsupported(`filesystem features: ${names.join(', ')}`);
}

/**
 * The name blkid gives: features ext3 never had (extents, flex_bg, 64bit,
 * huge files, metadata checksums, ...) make it ext4; a journal, ext3.
 */
export function ext4Kind(sb: { compat: number; incompat: number; roCompat: number }): 'ext2' | 'ext3' | 'ext4' {
  const ext3Incompat = Incompat.FILETYPE | Incompat.RECOVER | Incompat.META_BG;
  const ext3RoCompat = RoCompat.SPARSE_SUPER | RoCompat.LARGE_FILE | 0x4; /* btree_dir */
  if ((sb.incompat & ~ext3Incompat) !== 0 || (sb.roCompat & ~ext3RoCompat) !== 0) return 'ext4';
  return (sb.compat & Compat.HAS_JOURNAL) !== 0 ? 'ext3' : 'ext2';
}
