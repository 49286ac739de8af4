import { isStrataError } from '@strata/errors';
import { AttrEntry, AttrFlag } from './attr-entry';
import { parseAttrLeaf } from './attr-leaf';
import { readRemoteValue } from './attr-remote';
import { parseShortformAttrs } from './attr-shortform';
import { forkExtents } from './bmap-btree';
import { checkDaBlock, isNode, parseDaNode } from './da-block';
import { corrupt } from './errors';
import { findExtent } from './extent';
import { readMetaBlocks } from './fork-blocks';
import { ForkFormat, type XfsInode } from './inode';
import type { Volume } from './volume';

const MAX_DEPTH = 5;

/**
 * Every complete attribute of an inode with its value, as xfs_attr_list
 * walks them: the shortform list, the one leaf block, or the leaves of a
 * dabtree from the leftmost one along the forward links. Entries still
 * being written (INCOMPLETE) are left out, as the kernel does.
 */
export async function readAttrs(vol: Volume, inode: XfsInode): Promise<AttrEntry[]> {
  const what = `attributes of inode ${inode.ino}`;
  if (!inode.attrFork) return [];
  if (inode.aformat === ForkFormat.LOCAL) return parseShortformAttrs(inode.attrFork, what).filter((e) => !(e.flags & AttrFlag.INCOMPLETE));
  const extents = await forkExtents(vol, inode, 'attr');
  if (extents.length === 0) return [];
  const { sb } = vol;
  const bs = sb.blockSize;
  const block = async (fb: number): Promise<{ buf: Buffer; info: ReturnType<typeof checkDaBlock> }> => {
    const where = `${what} block ${fb}`;
    const buf = await readMetaBlocks(vol, extents, fb, 1, where);
    const e = extents[findExtent(extents, fb)];
    return { buf, info: checkDaBlock(sb, buf, (e.block + fb - e.offset) * (bs / 512), inode.ino, where) };
  };
  let fb = 0;
  let current = await block(fb);
  for (let depth = 0; isNode(current.info); depth++) {
    const node = parseDaNode(sb, current.buf, `${what} block ${fb}`);
    if (depth >= MAX_DEPTH) throw corrupt(what, 'dabtree too deep');
    fb = node.firstChild;
    current = await block(fb);
  }
  const limit = extents.reduce((n, e) => n + e.count, 0);
  const seen = new Set<number>();
  const out: AttrEntry[] = [];
  for (;;) {
    if (isNode(current.info)) throw corrupt(what, `block ${fb} is a node among leaves`);
    seen.add(fb);
    for (const e of parseAttrLeaf(sb, current.buf, `${what} block ${fb}`)) {
      if (e.flags & AttrFlag.INCOMPLETE) continue;
      if (e.remoteBlock !== undefined) {
        if (e.flags & AttrFlag.PARENT) continue;
        try {
          e.value = await readRemoteValue(vol, extents, inode.ino, e.remoteBlock, e.valueLength, what);
        } catch (err) {
          // One unreadable value costs that attribute only (the kernel's getxattr of it fails; the others work).
          if (!isStrataError(err)) throw err;
          vol.log({ event: 'xfs.damage', structure: 'xattr value', ino: inode.ino, name: e.name.toString('utf8'), reason: err.message });
          continue;
        }
      }
      out.push(e);
    }
    const next = current.info.forw;
    if (next === 0) break;
    if (seen.has(next) || seen.size >= limit) throw corrupt(what, `leaf chain loops at block ${next}`);
    fb = next;
    current = await block(fb);
  }
  return out;
}

