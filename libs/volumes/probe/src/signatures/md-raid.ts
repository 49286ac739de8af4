import type { Found } from '../probe-result';
import type { SignatureReader } from '../signature-reader';
import { labelText, uuidText } from '../text-fields';
import type { Signature } from './signature';

const MD_MAGIC = 0xa92b4efc;
const LEVELS: Record<number, string> = { [-4]: 'multipath', [-1]: 'linear', 0: 'raid0', 1: 'raid1', 4: 'raid4', 5: 'raid5', 6: 'raid6', 10: 'raid10' };

async function v1(r: SignatureReader, at: number, minor: string): Promise<Found | undefined> {
  const sb = await r.at(at, 256);
  if (!sb || sb.readUInt32LE(0) !== MD_MAGIC || sb.readUInt32LE(4) !== 1) return undefined;
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
  const at = Math.floor(r.size / 65536) * 65536 - 65536;
  if (at < 0) return undefined;
  const sb = await r.at(at, 128);
  if (!sb) return undefined;
  const le = sb.readUInt32LE(0) === MD_MAGIC;
  if (!le && sb.readUInt32BE(0) !== MD_MAGIC) return undefined;
  const u32 = (o: number): number => (le ? sb.readUInt32LE(o) : sb.readUInt32BE(o));
  const uuid = Buffer.concat([sb.subarray(20, 24), sb.subarray(52, 64)]);
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
    const sectors = Math.floor(r.size / 512);
    const at10 = (sectors - 16) & ~7;
    return (at10 > 0 ? await v1(r, at10 * 512, '0') : undefined) ?? (await v090(r));
  },
};
