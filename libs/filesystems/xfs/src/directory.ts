import { forkExtents } from './bmap-btree';
import { corrupt } from './errors';
import { Extent, findExtent } from './extent';
import { DirEntry, isDotOrDotDot } from './directory-entry';
import { parseDataBlock } from './directory-block';
import { parseShortformDir } from './directory-shortform';
import { isMapped, readMetaBlocks } from './fork-blocks';
import { ForkFormat, type XfsInode } from './inode';
import type { Volume } from './volume';

/** Directory data lives in the first 32 GiB of the directory's address space; leaf and free-index blocks come after. */
const DATA_SPACE_BYTES = 2 ** 35;

/**
 * Every name of a directory ("." and ".." left out), in the order the
 * kernel's readdir gives them: shortform entries, or each data block's
 * entries block by block. Leaf, node and free-index blocks only index the
 * data blocks, so a listing never needs them.
 */
export async function listDirectory(vol: Volume, dir: XfsInode): Promise<{ entries: DirEntry[]; parent?: number }> {
  const what = `directory ${dir.ino}`;
  if (dir.format === ForkFormat.LOCAL) {
    const sf = parseShortformDir(dir.dataFork, dir.size, vol.sb.ftype, what);
    return { entries: sf.entries.filter((e) => !isDotOrDotDot(e.name)), parent: sf.parent };
  }
  const { sb } = vol;
  const fsbPerDirBlock = 2 ** sb.dirBlkLog;
  const dirBlockBytes = sb.blockSize * fsbPerDirBlock;
  const dataLimit = DATA_SPACE_BYTES / sb.blockSize;
  const extents = await forkExtents(vol, dir, 'data');
  const out: DirEntry[] = [];
  let parent: number | undefined;
  let lastDb = -1;
  for (const e of extents) {
    if (e.offset >= dataLimit) break;
    const first = Math.floor(e.offset / fsbPerDirBlock);
    const last = Math.floor((Math.min(e.offset + e.count, dataLimit) - 1) / fsbPerDirBlock);
    for (let db = Math.max(first, lastDb + 1); db <= last; db++) {
      lastDb = db;
      const fb = db * fsbPerDirBlock;
      if (!isMapped(extents, fb)) continue;
      const where = `${what} block ${db}`;
      const buf = await readMetaBlocks(vol, extents, fb, fsbPerDirBlock, where);
      if (buf.length !== dirBlockBytes) throw corrupt(where, 'short');
      const daddr = firstSector(vol, extents, fb);
      for (const entry of parseDataBlock(sb, buf, daddr, dir.ino, where)) {
        if (!isDotOrDotDot(entry.name)) out.push(entry);
        else if (entry.name.length === 2) parent = entry.ino;
      }
    }
  }
  return { entries: out, parent };
}

function firstSector(vol: Volume, extents: readonly Extent[], fb: number): number {
  const e = extents[findExtent(extents, fb)];
  return (e.block + fb - e.offset) * (vol.sb.blockSize / 512);
}
