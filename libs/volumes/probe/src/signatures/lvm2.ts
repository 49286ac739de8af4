import { crc32 } from 'node:zlib';
import type { Found } from '../probe-result';
import type { SignatureReader } from '../signature-reader';
import type { Signature } from './signature';

const LABEL_SECTORS = 4;
const MDA_MAGIC = ' LVM2 x[5A%r0N*>';
const PV_EXT_USED = 1;

/** lvm2's calc_crc: reflected CRC-32 seeded 0xf597a6cf, no final inversion. */
function lvmCrc(b: Buffer): number {
  return ~crc32(b, ~0xf597a6cf >>> 0) >>> 0;
}

function formatUuid(raw: string): string {
  return `${raw.slice(0, 6)}-${raw.slice(6, 10)}-${raw.slice(10, 14)}-${raw.slice(14, 18)}-${raw.slice(18, 22)}-${raw.slice(22, 26)}-${raw.slice(26)}`;
}

/** The VG name: the first word of the metadata text of the PV's first metadata area, before its "{". */
async function vgName(r: SignatureReader, sector: Buffer, pvAt: number): Promise<{ name?: string; used: boolean }> {
  let at = pvAt + 40;
  const skipList = (): void => {
    while (at + 16 <= 512 && sector.readBigUInt64LE(at) !== 0n) at += 16;
    at += 16;
  };
  skipList();
  const mdaAt = at + 16 <= 512 ? Number(sector.readBigUInt64LE(at)) : 0;
  skipList();
  const used = at + 8 <= 512 && (sector.readUInt32LE(at + 4) & PV_EXT_USED) !== 0;
  if (!mdaAt) return { used };
  const mda = await r.at(mdaAt, 512);
  if (!mda || mda.toString('latin1', 4, 20) !== MDA_MAGIC) return { used };
  const offset = Number(mda.readBigUInt64LE(40));
  const size = Number(mda.readBigUInt64LE(48));
  if (!offset || !size) return { used };
  const text = await r.at(mdaAt + offset, Math.min(size, 512));
  const m = text ? /^\s*([A-Za-z0-9+_.-]+)\s*\{/.exec(text.toString('latin1')) : null;
  return { name: m?.[1], used: used || m !== null };
}

/** An LVM2 PV label ("LABELONE" ... "LVM2 001", its CRC valid) in one of the first four sectors. */
export const lvm2Signature: Signature = {
  name: 'lvm2',
  async probe(r) {
    const head = await r.at(0, LABEL_SECTORS * 512);
    if (!head) return undefined;
    for (let n = 0; n < LABEL_SECTORS; n++) {
      const s = head.subarray(n * 512, (n + 1) * 512);
      if (s.toString('latin1', 0, 8) !== 'LABELONE' || s.toString('latin1', 24, 32) !== 'LVM2 001') continue;
      if (s.readBigUInt64LE(8) !== BigInt(n) || lvmCrc(s.subarray(20)) !== s.readUInt32LE(16)) continue;
      const pvAt = s.readUInt32LE(20);
      if (pvAt < 32 || pvAt > 512 - 40) continue;
      const vg = await vgName(r, s, pvAt);
      const found: Found = { kind: 'lvm2-pv', type: 'LVM2_member', uuid: formatUuid(s.toString('latin1', pvAt, pvAt + 32)), version: 'LVM2 001' };
      found.detail = vg.name ? `VG ${vg.name}` : vg.used ? 'in a VG whose metadata is on other PVs' : 'not in a volume group';
      return found;
    }
    return undefined;
  },
};
