import { labelText } from '../text-fields';
import type { Signature } from './signature';

const MFT_RECORD_VOLUME = 3;
const ATTR_VOLUME_NAME = 0x60;
const ATTR_END = 0xffffffff;
const MAX_CLUSTER = 2 * 1024 * 1024;

/**
 * NTFS as libblkid checks it: the boot sector's BPB (unused fields zero,
 * sane cluster and MFT record sizes), the MFT's first record and $Volume's
 * record; LABEL from $Volume's $VOLUME_NAME, UUID the 64-bit volume serial
 * as 16 upper-case hex digits.
 */
export const ntfsSignature: Signature = {
  name: 'ntfs',
  async probe(r) {
    const bs = await r.at(0, 512);
    if (!bs || bs.toString('latin1', 3, 11) !== 'NTFS    ') return undefined;
    const sectorSize = bs.readUInt16LE(0x0b);
    if (sectorSize < 256 || sectorSize > 4096) return undefined;
    const spcRaw = bs[0x0d];
    let spc: number;
    if ([1, 2, 4, 8, 16, 32, 64, 128].includes(spcRaw)) spc = spcRaw;
    else if (spcRaw >= 240 && spcRaw <= 249) spc = 2 ** (256 - spcRaw);
    else return undefined;
    if (sectorSize * spc > MAX_CLUSTER) return undefined;
    // reserved_sectors, fats, root_entries, sectors, sectors_per_fat, large_sectors: all zero on NTFS.
    if (bs.readUInt16LE(0x0e) || bs[0x10] || bs.readUInt16LE(0x11) || bs.readUInt16LE(0x13) || bs.readUInt16LE(0x16) || bs.readUInt32LE(0x20)) return undefined;
    const cpmRaw = bs[0x40];
    if ((cpmRaw < 0xe1 || cpmRaw > 0xf7) && ![1, 2, 4, 8, 16, 32, 64].includes(cpmRaw)) return undefined;
    const cpm = bs.readInt8(0x40);
    const recordSize = cpm > 0 ? cpm * spc * sectorSize : 2 ** -cpm;
    const clusters = Number(bs.readBigUInt64LE(0x28)) / spc;
    const mftCluster = Number(bs.readBigUInt64LE(0x30));
    const mirrCluster = Number(bs.readBigUInt64LE(0x38));
    if (mftCluster > clusters || mirrCluster > clusters || recordSize < 4) return undefined;
    const mftAt = mftCluster * sectorSize * spc;
    const first = await r.at(mftAt, recordSize);
    if (!first || first.toString('latin1', 0, 4) !== 'FILE') return undefined;
    const rec = await r.at(mftAt + MFT_RECORD_VOLUME * recordSize, recordSize);
    if (!rec || rec.toString('latin1', 0, 4) !== 'FILE') return undefined;
    let label: string | undefined;
    const allocated = rec.readUInt32LE(0x1c);
    let at = rec.readUInt16LE(0x14);
    for (let guard = 0; guard < 1024 && at + 24 <= recordSize && at <= allocated; guard++) {
      const type = rec.readUInt32LE(at);
      const len = rec.readUInt32LE(at + 4);
      if (!len || type === ATTR_END) break;
      if (type === ATTR_VOLUME_NAME) {
        const valueLen = rec.readUInt32LE(at + 16);
        const valueOff = rec.readUInt16LE(at + 20);
        if (at + valueOff + valueLen <= recordSize) label = labelText(rec.subarray(at + valueOff, at + valueOff + (valueLen & ~1)), 'utf16le');
        break;
      }
      at += len;
    }
    return {
      kind: 'filesystem',
      type: 'ntfs',
      label,
      uuid: bs.readBigUInt64LE(0x48).toString(16).toUpperCase().padStart(16, '0'),
    };
  },
};
