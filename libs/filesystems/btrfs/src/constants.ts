/** On-disk constants of btrfs (fs/btrfs/ctree.h, uapi/linux/btrfs_tree.h). */

export const SUPER_INFO_OFFSET = 0x10000;
export const SUPER_INFO_SIZE = 4096;
/** Primary, then the mirrors at 64 MiB and 256 GiB. */
export const SUPER_MIRROR_OFFSETS = [0x10000, 0x4000000, 0x4000000000] as const;
export const MAGIC = Buffer.from('_BHRfS_M', 'latin1');
export const CSUM_SIZE = 32;
export const MAX_LEVEL = 8;
export const NAME_MAX = 255;

export const KeyType = {
  INODE_ITEM: 1,
  INODE_REF: 12,
  INODE_EXTREF: 13,
  XATTR_ITEM: 24,
  ORPHAN_ITEM: 48,
  DIR_LOG_ITEM: 60,
  DIR_LOG_INDEX: 72,
  DIR_ITEM: 84,
  DIR_INDEX: 96,
  EXTENT_DATA: 108,
  EXTENT_CSUM: 128,
  ROOT_ITEM: 132,
  ROOT_BACKREF: 144,
  ROOT_REF: 156,
  BLOCK_GROUP_ITEM: 192,
  DEV_ITEM: 216,
  CHUNK_ITEM: 228,
} as const;

export const ObjectId = {
  ROOT_TREE: 1n,
  EXTENT_TREE: 2n,
  CHUNK_TREE: 3n,
  DEV_TREE: 4n,
  FS_TREE: 5n,
  ROOT_TREE_DIR: 6n,
  CSUM_TREE: 7n,
  BLOCK_GROUP_TREE: 11n,
  DEV_ITEMS: 1n,
  FIRST_CHUNK_TREE: 256n,
  FIRST_FREE: 256n,
  /** -256 as u64: the highest objectid of an ordinary object or subvolume. */
  LAST_FREE: 0xffff_ffff_ffff_ff00n,
  /** -10 as u64. */
  EXTENT_CSUM: 0xffff_ffff_ffff_fff6n,
  /** The stub the kernel shows for a subvolume entry whose subvolume is not reachable from there. */
  EMPTY_SUBVOL_DIR: 2n,
  /** -6 as u64: the log root tree and its ROOT_ITEMs. */
  TREE_LOG: 0xffff_ffff_ffff_fffan,
} as const;

export const BlockGroupFlag = {
  DATA: 1n,
  SYSTEM: 2n,
  METADATA: 4n,
  RAID0: 8n,
  RAID1: 16n,
  DUP: 32n,
  RAID10: 64n,
  RAID5: 128n,
  RAID6: 256n,
  RAID1C3: 512n,
  RAID1C4: 1024n,
} as const;

export const PROFILE_MASK = 8n | 16n | 32n | 64n | 128n | 256n | 512n | 1024n;

export const Incompat = {
  MIXED_BACKREF: 1n << 0n,
  DEFAULT_SUBVOL: 1n << 1n,
  MIXED_GROUPS: 1n << 2n,
  COMPRESS_LZO: 1n << 3n,
  COMPRESS_ZSTD: 1n << 4n,
  BIG_METADATA: 1n << 5n,
  EXTENDED_IREF: 1n << 6n,
  RAID56: 1n << 7n,
  SKINNY_METADATA: 1n << 8n,
  NO_HOLES: 1n << 9n,
  METADATA_UUID: 1n << 10n,
  RAID1C34: 1n << 11n,
  ZONED: 1n << 12n,
  EXTENT_TREE_V2: 1n << 13n,
  RAID_STRIPE_TREE: 1n << 14n,
  SIMPLE_QUOTA: 1n << 16n,
} as const;

/** Incompat features this reader understands (anything else is refused by name). */
export const INCOMPAT_SUPPORTED =
  Incompat.MIXED_BACKREF |
  Incompat.DEFAULT_SUBVOL |
  Incompat.MIXED_GROUPS |
  Incompat.COMPRESS_LZO |
  Incompat.COMPRESS_ZSTD |
  Incompat.BIG_METADATA |
  Incompat.EXTENDED_IREF |
  Incompat.RAID56 |
  Incompat.SKINNY_METADATA |
  Incompat.NO_HOLES |
  Incompat.METADATA_UUID |
  Incompat.RAID1C34 |
  Incompat.SIMPLE_QUOTA;

export const INCOMPAT_NAMES: [bigint, string][] = [
  [Incompat.ZONED, 'zoned'],
  [Incompat.EXTENT_TREE_V2, 'extent_tree_v2'],
  [Incompat.RAID_STRIPE_TREE, 'raid_stripe_tree'],
];

export const CompatRo = {
  FREE_SPACE_TREE: 1n << 0n,
  FREE_SPACE_TREE_VALID: 1n << 1n,
  VERITY: 1n << 2n,
  BLOCK_GROUP_TREE: 1n << 3n,
} as const;

export const CsumType = { CRC32C: 0, XXHASH64: 1, SHA256: 2, BLAKE2B: 3 } as const;

export const FileExtentType = { INLINE: 0, REG: 1, PREALLOC: 2 } as const;
export const Compression = { NONE: 0, ZLIB: 1, LZO: 2, ZSTD: 3 } as const;

export const RootFlag = { RDONLY: 1n } as const;
