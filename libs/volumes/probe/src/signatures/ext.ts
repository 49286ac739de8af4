import { crc32cRaw } from '../crc32c';
import type { Found } from '../probe-result';
import { labelText, uuidText } from '../text-fields';
import type { Signature } from './signature';

const HAS_JOURNAL = 0x4;
const INCOMPAT_JOURNAL_DEV = 0x8;
const RO_COMPAT_METADATA_CSUM = 0x400;
const FLAGS_TEST_FILESYS = 0x4;
/** What ext2 and ext3 understand (libblkid ext.c): anything else makes it ext4. */
const EXT2_RO_SUPP = 0x1 | 0x2 | 0x4;
const EXT2_INCOMPAT_SUPP = 0x2 | 0x10;
const EXT3_RO_SUPP = EXT2_RO_SUPP;
const EXT3_INCOMPAT_SUPP = 0x2 | 0x4 | 0x10;

/**
 * ext2, ext3, ext4 (and ext4dev, jbd) as libblkid tells them apart: by the
 * journal and by features the older drivers do not understand. A
 * metadata_csum superblock must pass its CRC-32C, as in blkid.
 */
export const extSignature: Signature = {
  name: 'ext',
  async probe(r) {
    const sb = await r.at(1024, 1024);
    if (!sb || sb[56] !== 0x53 || sb[57] !== 0xef) return undefined;
    const compat = sb.readUInt32LE(0x5c);
    const incompat = sb.readUInt32LE(0x60);
    const roCompat = sb.readUInt32LE(0x64);
    if (roCompat & RO_COMPAT_METADATA_CSUM) {
      if (crc32cRaw(sb.subarray(0, 1020)) !== sb.readUInt32LE(1020)) return undefined;
    } else if (sb.readUInt32LE(24) >= 256) {
      return undefined;
    }
    const flags = sb.readUInt32LE(0x160);
    let type: string | undefined;
    if (incompat & INCOMPAT_JOURNAL_DEV) type = 'jbd';
    else if (flags & FLAGS_TEST_FILESYS) type = 'ext4dev';
    else if (roCompat & ~EXT3_RO_SUPP || incompat & ~EXT3_INCOMPAT_SUPP) type = 'ext4';
    else if (compat & HAS_JOURNAL) type = 'ext3';
    else if (!(roCompat & ~EXT2_RO_SUPP) && !(incompat & ~EXT2_INCOMPAT_SUPP)) type = 'ext2';
    if (!type) return undefined;
    const found: Found = {
      kind: 'filesystem',
      type,
      version: `${sb.readUInt32LE(0x4c)}.${sb.readUInt16LE(0x3e)}`,
    };
    if (sb[0x78] !== 0) found.label = labelText(sb.subarray(0x78, 0x88));
    found.uuid = uuidText(sb.subarray(0x68, 0x78));
    if (type === 'jbd') found.detail = 'an external ext3/ext4 journal';
    return found;
  },
};
