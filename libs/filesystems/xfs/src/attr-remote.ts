import { crcMatches } from './checksum';
import { corrupt } from './errors';
import { Extent, findExtent } from './extent';
import { readMetaBlocks } from './fork-blocks';
import type { Volume } from './volume';

const RMT_MAGIC = 0x5841524d; // XARM
const RMT_HEADER = 56;
const RMT_CRC_OFFSET = 12;

/**
 * A value kept in its own attribute-fork blocks. On v5 every block starts
 * with a header (owner, offset and length of its piece, CRC); v4 blocks are
 * raw bytes.
 */
export async function readRemoteValue(vol: Volume, extents: readonly Extent[], owner: number, first: number, length: number, what: string): Promise<Buffer> {
  const { sb } = vol;
  const bs = sb.blockSize;
  const per = sb.crc ? bs - RMT_HEADER : bs;
  const blocks = Math.max(1, Math.ceil(length / per));
  const out = Buffer.alloc(length);
  let done = 0;
  for (let i = 0; i < blocks; i++) {
    const fb = first + i;
    const where = `${what} value block ${fb}`;
    const buf = await readMetaBlocks(vol, extents, fb, 1, where);
    const n = Math.min(per, length - done);
    if (sb.crc) {
      if (buf.readUInt32BE(0) !== RMT_MAGIC) throw corrupt(where, 'bad magic');
      if (!crcMatches(buf, 0, bs, RMT_CRC_OFFSET)) throw corrupt(where, 'bad CRC');
      if (buf.readUInt32BE(4) !== done || buf.readUInt32BE(8) !== n) throw corrupt(where, 'wrong offset or length');
      if (!buf.subarray(16, 32).equals(sb.metaUuid)) throw corrupt(where, 'wrong uuid');
      if (buf.readBigUInt64BE(32) !== BigInt(owner)) throw corrupt(where, 'wrong owner');
      const e = extents[findExtent(extents, fb)];
      if (buf.readBigUInt64BE(40) !== BigInt((e.block + fb - e.offset) * (bs / 512))) throw corrupt(where, 'wrong block number');
      buf.copy(out, done, RMT_HEADER, RMT_HEADER + n);
    } else {
      buf.copy(out, done, 0, n);
    }
    done += n;
  }
  return out;
}
