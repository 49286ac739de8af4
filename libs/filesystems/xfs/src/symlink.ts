import { forkExtents } from './bmap-btree';
import { crcMatches } from './checksum';
import { corrupt } from './errors';
import { findExtent } from './extent';
import { readMetaBlocks } from './fork-blocks';
import { ForkFormat, type XfsInode } from './inode';
import type { Volume } from './volume';

const SYMLINK_MAXLEN = 1024;
const SYMLINK_MAGIC = 0x58534c4d; // XSLM
const SYMLINK_HEADER = 56;
const SYMLINK_CRC_OFFSET = 12;

/**
 * A symlink's target, as xfs_readlink gives it: from the data fork when
 * local, else from its blocks (on v5 each with a header naming owner,
 * offset and length). The VFS stops at the first NUL.
 */
export async function readSymlink(vol: Volume, inode: XfsInode): Promise<Buffer> {
  const what = `symlink ${inode.ino}`;
  const size = inode.size;
  if (size <= 0 || size > SYMLINK_MAXLEN) throw corrupt(what, `target length ${size}`);
  let target: Buffer;
  if (inode.format === ForkFormat.LOCAL) {
    target = Buffer.from(inode.dataFork.subarray(0, size));
  } else {
    const { sb } = vol;
    const bs = sb.blockSize;
    const per = sb.crc ? bs - SYMLINK_HEADER : bs;
    const extents = await forkExtents(vol, inode, 'data');
    target = Buffer.alloc(size);
    let done = 0;
    for (let fb = 0; done < size; fb++) {
      const where = `${what} block ${fb}`;
      const buf = await readMetaBlocks(vol, extents, fb, 1, where);
      const n = Math.min(per, size - done);
      if (sb.crc) {
        if (buf.readUInt32BE(0) !== SYMLINK_MAGIC) throw corrupt(where, 'bad magic');
        if (!crcMatches(buf, 0, bs, SYMLINK_CRC_OFFSET)) throw corrupt(where, 'bad CRC');
        if (buf.readUInt32BE(4) !== done || buf.readUInt32BE(8) !== n) throw corrupt(where, 'wrong offset or length');
        if (!buf.subarray(16, 32).equals(sb.metaUuid)) throw corrupt(where, 'wrong uuid');
        if (buf.readBigUInt64BE(32) !== BigInt(inode.ino)) throw corrupt(where, 'wrong owner');
        const e = extents[findExtent(extents, fb)];
        if (buf.readBigUInt64BE(40) !== BigInt((e.block + fb - e.offset) * (bs / 512))) throw corrupt(where, 'wrong block number');
        buf.copy(target, done, SYMLINK_HEADER, SYMLINK_HEADER + n);
      } else {
        buf.copy(target, done, 0, n);
      }
      done += n;
    }
  }
  const nul = target.indexOf(0);
  return nul < 0 ? target : target.subarray(0, nul);
}
