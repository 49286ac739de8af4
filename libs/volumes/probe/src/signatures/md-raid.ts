import type { Found } from '../probe-result';
import type { SignatureReader } from '../signature-reader';
import { labelText, uuidText } from '../text-fields';
import type { Signature } from './signature';

const MD_MAGIC = 0xa92b4efc;
/** md 0.90 keeps its superblock in the last 64 KiB-aligned 64 KiB. */
const RESERVED = 0x10000;
const LEVELS: Record<number, string> = { [-4]: 'multipath', [-1]: 'linear', 0: 'raid0', 1: 'raid1', 4: 'raid4', 5: 'raid5', 6: 'raid6', 10: 'raid10' };

async function v1(r: SignatureReader, at: number, minor: string): Promise<Found | undefined> {
  const sb = await r.at(at, 256);
  if (!sb || sb.readUInt32LE(0) !== MD_MAGIC || sb.readUInt32LE(4) !== 1) return undefined;
  // The superblock records where it is, in sectors.
  if (sb.readBigUInt64LE(144) !== BigInt(at / 512)) return undefined;
  const level = LEVELS[sb.readInt32LE(72)];
  return {
    kind: 'raid',
    type: 'linux_raid_member',
    version: `1.${minor}`,
    uuid: uuidText(sb.subarray(16, 32)),
    uuidSub: uuidText(sb.subarray(168, 184)),
    label: labelText(sb.subarray(32, 64)),
    detail: level ? `md ${level}, metadata 1.${minor}` : `md metadata 1.${minor}`,
  };
}

async function v090(r: SignatureReader): Promise<Found | undefined> {
  if (r.size <= RESERVED) return undefined;
  const at = Math.floor(r.size / RESERVED) * RESERVED - RESERVED;
  const sb = await r.at(at, 128);
  if (!sb) return undefined;
  const le = sb.readUInt32LE(0) === MD_MAGIC;
  if (!le && sb.readUInt32BE(0) !== MD_MAGIC) return undefined;
  const u32 = (o: number): number => (le ? sb.readUInt32LE(o) : sb.readUInt32BE(o));
  // The array's data lies before the superblock: it must fit.
  const size = u32(32) * 1024;
  if (r.size < size + RESERVED || at < size) return undefined;
  // libblkid: each uuid word in big-endian byte order (words 1-3 only from minor version 90 on).
  const uuid = Buffer.alloc(16);
  const words = u32(8) >= 90 ? [20, 52, 56, 60] : [20];
  words.forEach((o, i) => uuid.writeUInt32BE(u32(o), i * 4));
  const level = LEVELS[u32(28) | 0];
  return {
    kind: 'raid',
    type: 'linux_raid_member',
    version: `${u32(4)}.${u32(8)}.${u32(12)}`,
    uuid: uuidText(uuid),
    detail: level ? `md ${level}, metadata 0.90` : 'md metadata 0.90',
  };
}

/** md RAID members: superblock 1.1 at 0, 1.2 at 4 KiB (probed first), and the ones at the end of the device (1.0, 0.90). */
export const mdRaidStartSignature: Signature = {
  name: 'md-start',
  async probe(r) {
    return (await v1(r, 0, '1')) ?? (await v1(r, 4096, '2'));
  },
};

export const mdRaidEndSignature: Signature = {
  name: 'md-end',
  async probe(r) {
    if (r.size <= RESERVED) return undefined;
    return (await v090(r)) ?? (await v1(r, Math.floor(r.size / 4096) * 4096 - 0x2000, '0'));
  },
};
