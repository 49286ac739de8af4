import { crc32c } from '@strata/filesystem';

/** btrfs_name_hash: the DIR_ITEM and XATTR_ITEM key offset of a name (raw crc32c seeded with ~1). */
export function nameHash(name: Uint8Array): bigint {
  return BigInt(crc32c(0xfffffffe, name));
}

/** btrfs_extref_hash: the INODE_EXTREF key offset (crc32c seeded with the parent objectid's low 32 bits). */
export function extrefHash(parent: bigint, name: Uint8Array): bigint {
  return BigInt(crc32c(Number(parent & 0xffffffffn), name));
}
