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
    // One buffer per extent, each with one header on v5 (xfs_symlink_remote_read).
    const { sb } = vol;
    const bs = sb.blockSize;
    const header = sb.crc ? SYMLINK_HEADER : 0;
    const extents = await forkExtents(vol, inode, 'data');
    target = Buffer.alloc(size);
    let done = 0;
    for (let fb = 0; done < size; ) {
      const where = `${what} block ${fb}`;
      const e = extents[findExtent(extents, fb)];
      if (!e || fb >= e.offset + e.count) throw corrupt(where, 'is a hole');
      const blocks = Math.min(e.offset + e.count - fb, Math.ceil((size - done + header) / bs));
      const buf = await readMetaBlocks(vol, extents, fb, blocks, where);
      const n = Math.min(buf.length - header, size - done);
      if (n <= 0) throw corrupt(where, 'no room for the target');
      if (sb.crc) {
        if (buf.readUInt32BE(0) !== SYMLINK_MAGIC) throw corrupt(where, 'bad magic');
        if (!crcMatches(buf, 0, buf.length, SYMLINK_CRC_OFFSET)) throw corrupt(where, 'bad CRC');
        if (buf.readUInt32BE(4) !== done || buf.readUInt32BE(8) !== n) throw corrupt(where, 'wrong offset or length');
        if (!buf.subarray(16, 32).equals(sb.metaUuid)) throw corrupt(where, 'wrong uuid');
        if (buf.readBigUInt64BE(32) !== BigInt(inode.ino)) throw corrupt(where, 'wrong owner');
        if (buf.readBigUInt64BE(40) !== BigInt((e.block + fb - e.offset) * (bs / 512))) throw corrupt(where, 'wrong block number');
      }
      buf.copy(target, done, header, header + n);
      done += n;
      fb += blocks;
    }
  }
  const nul = target.indexOf(0);
  return nul < 0 ? target : target.subarray(0, nul);
}
