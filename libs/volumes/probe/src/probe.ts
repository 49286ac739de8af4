import { Errno, StrataError, isStrataError } from '@strata/errors';
import type { ByteSource } from './byte-source';
import { type Probe, READABLE_TYPES } from './probe-result';
import { SignatureReader } from './signature-reader';
import { btrfsSignature } from './signatures/btrfs';
import { exfatSignature } from './signatures/exfat';
import { extSignature } from './signatures/ext';
import { hfsSignature } from './signatures/hfs';
import { iso9660Signature } from './signatures/iso9660';
import { luksSignature } from './signatures/luks';
import { lvm2Signature } from './signatures/lvm2';
import { f2fsSignature, magicOnlySignature, squashfsSignature } from './signatures/magic-only';
import { mdRaidEndSignature, mdRaidStartSignature } from './signatures/md-raid';
import { ntfsSignature } from './signatures/ntfs';
import { partitionTableSignature } from './signatures/partition-table';
import type { Signature } from './signatures/signature';
import { swapSignature } from './signatures/swap';
import { vfatSignature } from './signatures/vfat';
import { xfsSignature } from './signatures/xfs';
import { zfsSignature } from './signatures/zfs';

/**
 * In libblkid's spirit: containers that hide what is inside them first (md
 * RAID, LVM2, LUKS, BitLocker), then filesystems and swap, then partition
 * tables. The first match is the answer.
 */
const SIGNATURES: readonly Signature[] = [
  mdRaidStartSignature,
  mdRaidEndSignature,
  lvm2Signature,
  luksSignature,
  magicOnlySignature,
  ntfsSignature,
  exfatSignature,
  vfatSignature,
  swapSignature,
  xfsSignature,
  extSignature,
  btrfsSignature,
  iso9660Signature,
  hfsSignature,
  squashfsSignature,
  f2fsSignature,
  zfsSignature,
  partitionTableSignature,
];

/** How much of each end must be zero for "empty": more than every signature offset probed. */
const EMPTY_HEAD = 1024 * 1024;
const EMPTY_TAIL = 256 * 1024;

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * What a stretch of disk (partition, LV, whole disk) holds, by its
 * signatures as blkid reads them: TYPE, LABEL, UUID and VERSION as `blkid
 * -p` prints them. Only signature areas are read. A source that cannot be
 * read rejects with its StrataError (anything else becomes EIO).
 */
export async function probe(source: ByteSource): Promise<Probe> {
  try {
    const r = new SignatureReader(source);
    for (const sig of SIGNATURES) {
      const found = await sig.probe(r);
      if (!found) continue;
      const out: Probe = { ...found, readable: found.kind === 'filesystem' && READABLE_TYPES.has(found.type) };
      for (const key of Object.keys(out) as (keyof Probe)[]) if (out[key] === undefined) delete out[key];
      return out;
    }
    const head = Math.min(source.size, EMPTY_HEAD);
    const tail = Math.min(source.size - head, EMPTY_TAIL);
    const zero = (head === 0 || isZero(await source.read(0, head))) && (tail === 0 || isZero(await source.read(source.size - tail, tail)));
    return zero ? { kind: 'empty', type: '', readable: false } : { kind: 'unknown', type: '', readable: false };
  } catch (err) {
    if (isStrataError(err)) throw err;
    throw new StrataError(Errno.EIO, `probe: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
