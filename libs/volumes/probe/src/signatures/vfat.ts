import type { Found } from '../probe-result';
import type { SignatureReader } from '../signature-reader';
import { isPowerOfTwo, labelText, serialText } from '../text-fields';
import type { Signature } from './signature';

const FAT12_MAX = 0xff4;
const FAT16_MAX = 0xfff4;
const FAT32_MAX = 0x0ffffff6;
const ATTR_VOLUME_ID = 0x08;
const ATTR_DIR = 0x10;
const ATTR_LONG_NAME = 0x0f;
/** libblkid follows the FAT32 root directory's chain this far. */
const MAX_ROOT_CLUSTERS = 99;

/** Which of libblkid's vfat magics matched: a weak one (jump byte, 0x55AA) needs the boot signature and no JFS/HPFS id. */
function magicStrength(bs: Buffer): 'strong' | 'weak' | undefined {
  const at = (off: number, s: string): boolean => bs.toString('latin1', off, off + s.length) === s;
  if (at(0x52, 'MSWIN') || at(0x52, 'FAT32   ') || at(0x36, 'MSDOS') || at(0x36, 'FAT16   ') || at(0x36, 'FAT12   ') || at(0x36, 'FAT     ')) return 'strong';
  if (bs[0] === 0xeb || bs[0] === 0xe9 || (bs[0x1fe] === 0x55 && bs[0x1ff] === 0xaa)) return 'weak';
  return undefined;
}

/** The volume label entry of a directory stretch (libblkid search_fat_label). */
function labelEntry(dir: Buffer): Buffer | undefined {
  for (let at = 0; at + 32 <= dir.length; at += 32) {
    const e = dir.subarray(at, at + 32);
    if (e[0] === 0) break;
    const attr = e[11];
    if (e[0] === 0xe5 || e.readUInt16LE(20) !== 0 || e.readUInt16LE(26) !== 0 || (attr & 0x3f) === ATTR_LONG_NAME) continue;
    if ((attr & (ATTR_VOLUME_ID | ATTR_DIR)) === ATTR_VOLUME_ID) {
      const name = Buffer.from(e.subarray(0, 11));
      if (name[0] === 0x05) name[0] = 0xe5;
      return name;
    }
  }
  return undefined;
}

function isBitLocker(bs: Buffer): boolean {
  return bs.toString('latin1', 3, 11) === '-FVE-FS-';
}

async function fat32RootLabel(r: SignatureReader, bs: Buffer, sectorSize: number, reserved: number, fatSize: number): Promise<Buffer | undefined> {
  const clusterSize = bs[0x0d];
  const bufSize = clusterSize * sectorSize;
  const entries = Math.floor((bs.readUInt32LE(0x24) * sectorSize) / 4);
  let next = bs.readUInt32LE(0x2c);
  for (let i = 0; next && next < entries && i < MAX_ROOT_CLUSTERS; i++) {
    const off = (reserved + fatSize + (next - 2) * clusterSize) * sectorSize;
    const dir = await r.at(off, bufSize);
    if (!dir) return undefined;
    const found = labelEntry(dir);
    if (found) return found;
    const fat = await r.at(reserved * sectorSize + next * 4, 4);
    if (!fat) return undefined;
    next = fat.readUInt32LE(0) & 0x0fffffff;
  }
  return undefined;
}

/**
 * FAT12/16/32 as libblkid's vfat prober checks it (fat_valid_superblock).
 * LABEL is the root directory's volume label entry only (as blkid: the boot
 * sector's copy is its LABEL_FATBOOT); UUID the volume serial, "ABCD-1234".
 */
export const vfatSignature: Signature = {
  name: 'vfat',
  async probe(r) {
    const bs = await r.at(0, 512);
    if (!bs) return undefined;
    const strength = magicStrength(bs);
    if (!strength) return undefined;
    if (strength === 'weak') {
      if (bs[0x1fe] !== 0x55 || bs[0x1ff] !== 0xaa) return undefined;
      const id = bs.toString('latin1', 0x36, 0x3e);
      if (id === 'JFS     ' || id === 'HPFS    ') return undefined;
    }
    const fats = bs[0x10];
    const reserved = bs.readUInt16LE(0x0e);
    const media = bs[0x15];
    const clusterSize = bs[0x0d];
    const sectorSize = bs.readUInt16LE(0x0b);
    if (!fats || !reserved || !(media >= 0xf8 || media === 0xf0) || !isPowerOfTwo(clusterSize)) return undefined;
    if (!isPowerOfTwo(sectorSize) || sectorSize < 512 || sectorSize > 4096) return undefined;
    const dirEntries = bs.readUInt16LE(0x11);
    let sectors = bs.readUInt16LE(0x13);
    if (sectors === 0) sectors = bs.readUInt32LE(0x20);
    const fat16Length = bs.readUInt16LE(0x16);
    const fat32Length = bs.readUInt32LE(0x24);
    const fatLength = fat16Length || fat32Length;
    const fatSize = (fatLength * fats) >>> 0;
    const dirSize = Math.floor((dirEntries * 32 + sectorSize - 1) / sectorSize);
    // libblkid computes in 32-bit unsigned arithmetic: an impossible layout wraps to a huge count.
    const clusters = Math.floor(((sectors - (reserved + fatSize + dirSize)) >>> 0) / clusterSize);
    const max = !fat16Length && fat32Length ? FAT32_MAX : clusters > FAT12_MAX ? FAT16_MAX : FAT12_MAX;
    if (clusters > max || isBitLocker(bs)) return undefined;

    const found: Found = { kind: 'filesystem', type: 'vfat' };
    let volLabel: Buffer | undefined;
    if (fat16Length) {
      const dir = await r.at((reserved + fatSize) * sectorSize, dirEntries * 32);
      if (dir) volLabel = labelEntry(dir);
      if (bs[0x26] === 0x28 || bs[0x26] === 0x29) found.uuid = serialText(bs.subarray(0x27, 0x2b));
      if (clusters < FAT12_MAX) found.version = 'FAT12';
      else if (clusters < FAT16_MAX) found.version = 'FAT16';
    } else if (fat32Length) {
      volLabel = await fat32RootLabel(r, bs, sectorSize, reserved, fatSize);
      found.version = 'FAT32';
      found.uuid = serialText(bs.subarray(0x43, 0x47));
      const fsinfo = bs.readUInt16LE(0x30);
      if (fsinfo) {
        const info = await r.at(fsinfo * sectorSize, 512);
        if (!info) return undefined;
        const sig1 = info.toString('latin1', 0, 4);
        const sig2 = info.toString('latin1', 484, 488);
        if (sig1 !== 'RRaA' && sig1 !== 'RRdA' && sig1 !== '\0\0\0\0') return undefined;
        if (sig2 !== 'rrAa' && sig2 !== '\0\0\0\0') return undefined;
      }
    }
    if (volLabel) found.label = labelText(volLabel, 'latin1');
    return found;
  },
};
