import type { Signature } from './signature';

const UBERBLOCK_MAGIC = 0x00bab10cn;
const LABEL_SIZE = 256 * 1024;
const UBERBLOCKS_AT = 128 * 1024;
/** libblkid wants this many uberblocks before it believes a ZFS label. */
const WANT = 4;

/** A ZFS pool member: uberblocks (magic 0x00bab10c, either byte order) in the array of label 0 or label 1. */
export const zfsSignature: Signature = {
  name: 'zfs',
  async probe(r) {
    for (const label of [0, LABEL_SIZE]) {
      const arr = await r.at(label + UBERBLOCKS_AT, 128 * 1024);
      if (!arr) continue;
      let found = 0;
      for (let at = 0; at + 8 <= arr.length; at += 1024) {
        if (arr.readBigUInt64LE(at) === UBERBLOCK_MAGIC || arr.readBigUInt64BE(at) === UBERBLOCK_MAGIC) found++;
      }
      if (found >= WANT) return { kind: 'filesystem', type: 'zfs_member', detail: 'a ZFS pool member' };
    }
    return undefined;
  },
};
