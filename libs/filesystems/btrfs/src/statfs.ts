import type { FsStatFs } from '@strata/filesystem';
import { BlockGroupFlag, CompatRo, KeyType, NAME_MAX, ObjectId } from './constants';
import { BTree } from './btree';
import { profileFactor } from './chunk-map';
import { key } from './key';
import { parseRootItem } from './root-item';
import type { Volume } from './volume';

const SZ_1M = 1024 * 1024;
const SZ_512M = 512 * SZ_1M;
const STRIPE_LEN = 64 * 1024;
const MAX_LEVEL = 8;
const UNLINK_METADATA_UNITS = 6;

async function rootBytesUsed(vol: Volume, id: bigint): Promise<number | undefined> {
  const it = await vol.rootTree.lastAtOrBefore(key(id, KeyType.ROOT_ITEM, 0xffff_ffff_ffff_ffffn), key(id, KeyType.ROOT_ITEM, 0n));
  return it ? Number(parseRootItem(it.data).bytesUsed) : undefined;
}

/**
 * The global block reserve as btrfs_update_global_block_rsv sizes it: the
 * bytes of the extent, csum and free-space trees (and block-group tree), at
 * least enough for an unlink's items and delayed refs, at most 512 MiB.
 */
async function globalReserve(vol: Volume): Promise<number> {
  const ids = [ObjectId.EXTENT_TREE, ObjectId.CSUM_TREE, 10n];
  if ((vol.sb.compatRoFlags & CompatRo.BLOCK_GROUP_TREE) !== 0n) ids.push(ObjectId.BLOCK_GROUP_TREE);
  // The root tree counts as one item; its in-memory bytes_used is 0 on a fresh mount.
  let bytes = 0;
  let items = 1;
  for (const id of ids) {
    const used = await rootBytesUsed(vol, id);
    if (used === undefined) continue;
    bytes += used;
    items++;
  }
  items += UNLINK_METADATA_UNITS;
  const insert = (n: number): number => vol.sb.nodesize * MAX_LEVEL * 2 * n;
  const fst = (vol.sb.compatRoFlags & CompatRo.FREE_SPACE_TREE) !== 0n ? 2 : 1;
  const min = insert(items) + insert(UNLINK_METADATA_UNITS) * fst;
  return Math.min(Math.max(bytes, min), SZ_512M);
}

/**
 * statfs as btrfs_statfs computes it on a read-only mount from the block
 * groups' used bytes, the unallocated device space usable for data, and the
 * global reserve counted as used.
 */
export async function computeStatfs(vol: Volume): Promise<FsStatFs> {
  const bits = Math.log2(vol.sb.sectorsize);
  const groupTree = (vol.sb.compatRoFlags & CompatRo.BLOCK_GROUP_TREE) !== 0n ? ObjectId.BLOCK_GROUP_TREE : ObjectId.EXTENT_TREE;
  const rootIt = await vol.rootTree.lastAtOrBefore(key(groupTree, KeyType.ROOT_ITEM, 0xffff_ffff_ffff_ffffn), key(groupTree, KeyType.ROOT_ITEM, 0n));
  let totalUsed = 0;
  let dataFactor = 1;
  let dataType: bigint = BlockGroupFlag.DATA;
  if (rootIt) {
    const ri = parseRootItem(rootIt.data);
    const tree = new BTree(vol.reader, { bytenr: ri.bytenr, level: ri.level, generation: ri.generation, name: 'block groups' });
    for (const c of vol.chunks.all) {
      const it = await tree.get(key(BigInt(c.logical), KeyType.BLOCK_GROUP_ITEM, BigInt(c.length)));
      if (!it || it.data.length < 24) continue;
      const used = Number(it.data.readBigUInt64LE(0));
      const flags = it.data.readBigUInt64LE(16);
      const factor = profileFactor(flags);
      const diskUsed = used * factor;
      if ((flags & BlockGroupFlag.DATA) !== 0n) {
        dataFactor = factor;
        dataType = flags;
      }
      totalUsed += diskUsed;
    }
  }
  const blocks = Math.floor(Math.floor(Number(vol.sb.totalBytes) / dataFactor) / 2 ** bits);
  let bfree = blocks - Math.floor(Math.floor(totalUsed / dataFactor) / 2 ** bits);
  const rsv = Math.floor((await globalReserve(vol)) / 2 ** bits);
  bfree = bfree >= rsv ? bfree - rsv : 0;

  // btrfs_calc_avail_data_space for one device.
  let avail = Number(vol.device.totalBytes - vol.device.bytesUsed);
  avail = Math.floor(avail / STRIPE_LEN) * STRIPE_LEN;
  avail = avail >= SZ_1M ? avail - SZ_1M : 0;
  const minStripe = ((dataType & BlockGroupFlag.DUP) !== 0n ? 2 : 1) * STRIPE_LEN;
  if (avail < STRIPE_LEN || avail < minStripe) avail = 0;
  // On a read-only mount (the truth this reader matches) the kernel counts the free space inside
  // allocated data block groups as read-only (btrfs_account_ro_block_groups_free_space): only
  // unallocated device space is available.
  const bavail = Math.floor(Math.floor(avail / dataFactor) / 2 ** bits);
  return { bsize: vol.sb.sectorsize, frsize: vol.sb.sectorsize, blocks, bfree, bavail, files: 0, ffree: 0, namemax: NAME_MAX };
}
