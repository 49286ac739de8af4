import { Errno, StrataError } from '@strata/errors';
import { MetadataBlock } from './block-reader';
import { badChecksum, corrupt } from './corruption';
import { DIRENT_TAIL_SIZE, DirParseOptions, RawDirEntry, parseDirEntries, verifyDirentTail } from './directory-block';
import { writtenBlocks } from './file-blocks';
import { Compat, Incompat } from './features';
import { BadHtree, HtreeDirectory, htreeLeaves, htreeLookup } from './htree';
import { InodeFlag, InodeRecord } from './inode';
import { INLINE_IBLOCK_SIZE, inlineOverflow } from './inline-data';
import { hasCompat, hasIncompat, hasMetadataCsum } from './superblock';
import { Volume, checksumEvent } from './volume';

/** Blocks one resolve keeps mapped at most (a directory's index and leaves; beyond, the reader's cache still holds them). */
const MAX_SHARED_BLOCKS = 65_536;

/** Directory blocks fetched per batch while scanning, so a huge directory is never read into memory at once. */
const SCAN_BATCH = 64;

/**
 * A directory block missing from the cache is read with the aligned window
 * of this many blocks around it (64 KiB at 4 KiB blocks): ext4 packs
 * directory blocks together, so a walk's next listings mostly come in the
 * same source read (issue 28: the vm-image guest's 895 one-block directory
 * reads fall in 57 such windows).
 */
const DIRECTORY_READ_AROUND = 16;

function parseOptions(vol: Volume, what: string): DirParseOptions {
  return { hasFileType: hasIncompat(vol.sb, Incompat.FILETYPE), inodesCount: vol.sb.inodesCount, what };
}

function isIndexed(vol: Volume, dir: InodeRecord): boolean {
  return hasCompat(vol.sb, Compat.DIR_INDEX) && (dir.stat.flags & InodeFlag.INDEX) !== 0;
}

/**
 * How a leaf block is read. 'linear': the kernel's linear readdir, which
 * skips a block failing its checksum. 'htree': its hashed readdir, which
 * fails on it (EBADMSG). 'lookup': a search, which fails on it too. In all
 * three an entry failing ext4_check_dir_entry ends its block: the entries
 * before it are kept (a lookup that did not find its name there fails with
 * EUCLEAN, as the kernel's search does when it meets the bad entry).
 */
type LeafMode = 'linear' | 'htree' | 'lookup';


/** Entries of one leaf block, after its checksum tail is verified (once per cached block). */
function leafEntries(vol: Volume, dir: InodeRecord, lblk: number, mb: MetadataBlock | { data: Buffer; verified?: undefined }, mode: LeafMode): LeafRead {
  const what = `directory ${dir.stat.ino} block ${lblk}`;
  let end = mb.data.length;
  if (hasMetadataCsum(vol.sb)) {
    if (!mb.verified?.has('dirent')) {
      const reason = verifyDirentTail(mb.data, dir.csumSeed);
      if (reason) {
        checksumEvent(vol, 'directory block', reason, { ino: dir.stat.ino, block: lblk });
        if (mode === 'htree') throw badChecksum(what, reason);
        // The linear readdir skips the block; a search that reaches it fails there.
        return { entries: [], failed: badChecksum(what, reason) };
      }
      mb.verified?.add('dirent');
    }
    end -= DIRENT_TAIL_SIZE;
  }
  let failed: StrataError | undefined;
  const entries = parseDirEntries(mb.data, 0, end, vol.sb.blockSize, {
    ...parseOptions(vol, what),
    onBadEntry: (err) => {
      failed = err instanceof StrataError ? err : corrupt(what, err.message);
      vol.log({ event: 'ext4.dirent', ino: dir.stat.ino, block: lblk, reason: err.message });
    },
  });
  return failed ? { entries, failed } : { entries };
}

interface LeafRead {
  /** The entries a readdir shows (up to a bad entry, which ends the block). */
  entries: RawDirEntry[];
  /** What a search that reaches this block without finding its name fails with: a bad entry (EUCLEAN) or checksum (EBADMSG). */
  failed?: StrataError;
}

/** An htree interior node disguises itself as one empty entry spanning the block. */
function looksLikeIndexNode(block: Buffer, blockSize: number): boolean {
  const rec = block.readUInt16LE(4);
  return block.readUInt32LE(0) === 0 && (rec === blockSize || (blockSize >= 65536 && rec === 0));
}

function refuseEncrypted(dir: InodeRecord): void {
  if (dir.stat.flags & InodeFlag.ENCRYPT) {
    throw new StrataError(Errno.EOPNOTSUPP, `ext4: inode ${dir.stat.ino} is encrypted (encrypt feature): not supported`);
  }
}

/** Inline directory: the parent in i_block's first 4 bytes, entries in the rest of i_block and in system.data. */
function inlineEntries(vol: Volume, dir: InodeRecord): { parent: number; entries: RawDirEntry[] } {
  const what = `inline directory ${dir.stat.ino}`;
  const opts = parseOptions(vol, what);
  const parent = dir.iBlock.readUInt32LE(0);
  const entries = parseDirEntries(dir.iBlock, 4, INLINE_IBLOCK_SIZE, vol.sb.blockSize, opts);
  const overflow = inlineOverflow(dir, vol.sb.inodeSize);
  if (overflow.length > 0) entries.push(...parseDirEntries(overflow, 0, overflow.length, vol.sb.blockSize, opts));
  return { parent, entries };
}

/**
 * Calls `visit` with each leaf block's entries in logical order, until it
 * returns true. Holes are skipped (as the kernel's readdir does); in an
 * indexed directory the root and interior index blocks hold no entries
 * beyond "." and "..".
 */
async function scanBlocks(vol: Volume, dir: InodeRecord, mode: LeafMode, visit: (leaf: LeafRead) => boolean): Promise<void> {
  const bs = vol.sb.blockSize;
  const nblocks = Math.ceil(dir.stat.size / bs);
  const indexed = isIndexed(vol, dir);
  // Mapping the whole range at once skips holes in one step however large i_size claims to be.
  const runs = await writtenBlocks(vol, dir, 0, nblocks);
  for (const run of runs) {
    for (let done = 0; done < run.count; done += SCAN_BATCH) {
      const count = Math.min(SCAN_BATCH, run.count - done);
      const blocks =
        count === 1
          ? [await vol.reader.metadata(run.pblk + done, `directory ${dir.stat.ino}`, run.pblk + done + 1, DIRECTORY_READ_AROUND)]
          : await vol.reader.metadataRun(run.pblk + done, count, `directory ${dir.stat.ino}`);
      for (let i = 0; i < blocks.length; i++) {
        const lblk = run.lblk + done + i;
        const mb = blocks[i];
        let leaf: LeafRead;
        if (indexed && lblk === 0) {
          const dotdot = mb.data.readUInt32LE(12);
          leaf = { entries: [{ ino: mb.data.readUInt32LE(0), name: Buffer.from('.'), type: 'dir' }, { ino: dotdot, name: Buffer.from('..'), type: 'dir' }] };
        } else if (indexed && looksLikeIndexNode(mb.data, bs)) {
          continue;
        } else {
          leaf = leafEntries(vol, dir, lblk, mb, mode);
        }
        if (visit(leaf)) return;
      }
    }
  }
}

function isDotOrDotDot(name: Buffer): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
}

export async function listDirectory(vol: Volume, dir: InodeRecord): Promise<RawDirEntry[]> {
  refuseEncrypted(dir);
  if (dir.stat.flags & InodeFlag.INLINE_DATA) return inlineEntries(vol, dir).entries.filter((e) => !isDotOrDotDot(e.name));
  if (isIndexed(vol, dir)) {
    try {
      return await indexedList(vol, dir);
    } catch (err) {
      if (!(err instanceof BadHtree)) throw err;
      // ext4_readdir: an index dx_probe rejects is ignored and the directory read linearly.
      vol.log({ event: 'ext4.htree_fallback', ino: dir.stat.ino, reason: err.message });
    }
  }
  // is_dx_dir(): with dir_index a one-block directory is read by the hashed readdir too, which fails on a bad checksum.
  const oneBlock = hasCompat(vol.sb, Compat.DIR_INDEX) && Math.floor(dir.stat.size / vol.sb.blockSize) === 1;
  const out: RawDirEntry[] = [];
  await scanBlocks(vol, dir, oneBlock ? 'htree' : 'linear', (leaf) => {
    for (const e of leaf.entries) if (!isDotOrDotDot(e.name)) out.push(e);
    return false;
  });
  return out;
}

/**
 * A linear directory's listing and, for each listed entry, what a lookup of
 * its name gives, from one pass over its blocks: the inode of the name's
 * first entry, or the error of the first damaged block met before it (what
 * linearResolve gives for the same names). Undefined for inline and hashed
 * directories: their lookups are resolved apart (resolveInDirectory).
 */
export async function listAndResolveLinear(vol: Volume, dir: InodeRecord): Promise<{ entries: RawDirEntry[]; resolved: (number | StrataError)[] } | undefined> {
  refuseEncrypted(dir);
  if (dir.stat.flags & InodeFlag.INLINE_DATA || isIndexed(vol, dir)) return undefined;
  // The same mode listDirectory reads a linear directory in: its listing, errors included, is the same.
  const oneBlock = hasCompat(vol.sb, Compat.DIR_INDEX) && Math.floor(dir.stat.size / vol.sb.blockSize) === 1;
  const entries: RawDirEntry[] = [];
  const first = new Map<string, number | StrataError>();
  let damaged: StrataError | undefined;
  await scanBlocks(vol, dir, oneBlock ? 'htree' : 'linear', (leaf) => {
    for (const e of leaf.entries) {
      if (!isDotOrDotDot(e.name)) entries.push(e);
      const k = e.name.toString('latin1');
      if (!first.has(k)) first.set(k, damaged ?? e.ino);
    }
    // A search that reaches a damaged block fails there: names first met after it resolve to its error.
    damaged ??= leaf.failed;
    return false;
  });
  return { entries, resolved: entries.map((e) => first.get(e.name.toString('latin1')) as number | StrataError) };
}

/**
 * A hashed directory listed as the kernel's readdir lists it: the leaves
 * the index leads to, in hash order, each once. A leaf outside the index is
 * not listed (nor found by a lookup); a leaf that is a hole or fails its
 * checksum fails the listing.
 */
async function indexedList(vol: Volume, dir: InodeRecord): Promise<RawDirEntry[]> {
  const access = htreeAccess(vol, dir, () => undefined, DIRECTORY_READ_AROUND);
  const out: RawDirEntry[] = [];
  const seen = new Set<string>();
  for (const lblk of await htreeLeaves(access)) {
    const [run] = await writtenBlocks(vol, dir, lblk, lblk + 1);
    if (!run) throw corrupt(`directory ${dir.stat.ino}`, `htree leaf block ${lblk} is a hole`);
    const mb = await vol.reader.metadata(run.pblk, `directory ${dir.stat.ino}`, run.pblk + 1, DIRECTORY_READ_AROUND);
    for (const e of leafEntries(vol, dir, lblk, mb, 'htree').entries) {
      const key = e.name.toString('latin1');
      if (isDotOrDotDot(e.name) || seen.has(key)) continue;
      seen.add(key);
      out.push(e);
    }
  }
  return out;
}

async function linearLookup(vol: Volume, dir: InodeRecord, name: Buffer): Promise<number | undefined> {
  const [found] = await linearResolve(vol, dir, [name]);
  if (found instanceof StrataError) throw found;
  return found;
}

/**
 * Names searched for the way the kernel's linear search does, all in one
 * pass: each is found in the first block holding it, unless a block met
 * before it is damaged (a bad entry, a failed checksum), which fails every
 * search that reaches it. Listings skip that damage, so this is what makes
 * a listed name's lookup agree with the kernel's.
 */
async function linearResolve(vol: Volume, dir: InodeRecord, names: readonly Buffer[]): Promise<(number | undefined | StrataError)[]> {
  const out: (number | undefined | StrataError)[] = new Array(names.length).fill(undefined);
  const want = new Map<string, number[]>();
  names.forEach((n, i) => {
    const k = n.toString('latin1');
    want.set(k, [...(want.get(k) ?? []), i]);
  });
  let open = want.size;
  await scanBlocks(vol, dir, 'lookup', (leaf) => {
    for (const e of leaf.entries) {
      const k = e.name.toString('latin1');
      const at = want.get(k);
      if (!at) continue;
      for (const i of at) out[i] = e.ino;
      want.delete(k);
      open--;
    }
    if (leaf.failed) {
      for (const at of want.values()) for (const i of at) out[i] = leaf.failed;
      return true;
    }
    return open === 0;
  });
  return out;
}

/** What lookups of many names of one directory give (an inode, nothing, or the error the kernel's lookup fails with), for a listing's entries. */
export async function resolveInDirectory(vol: Volume, dir: InodeRecord, names: readonly Buffer[]): Promise<(number | undefined | StrataError)[]> {
  refuseEncrypted(dir);
  if (dir.stat.flags & InodeFlag.INLINE_DATA || !isIndexed(vol, dir)) {
    if (dir.stat.flags & InodeFlag.INLINE_DATA) {
      const { entries } = inlineEntries(vol, dir);
      return names.map((n) => entries.find((e) => e.name.equals(n))?.ino);
    }
    return linearResolve(vol, dir, names);
  }
  // A hashed lookup reads the root, an index block and a leaf, all shared (each leaf parsed once) after the first.
  const shared = sharedLookups();
  const out: (number | undefined | StrataError)[] = [];
  for (const n of names) {
    try {
      out.push(isDotOrDotDot(n) ? await lookupInDirectory(vol, dir, n) : await indexedLookup(vol, dir, n, shared));
    } catch (err) {
      if (err instanceof BadHtree) {
        // ext4_find_entry: an index dx_probe rejects sends every lookup to the linear search, one pass for the rest.
        vol.log({ event: 'ext4.htree_fallback', ino: dir.stat.ino, reason: err.message });
        return [...out, ...(await linearResolve(vol, dir, names.slice(out.length)))];
      }
      if (!(err instanceof StrataError)) throw err;
      out.push(err);
    }
  }
  return out;
}

/**
 * The directory's blocks as the htree code reads them; `onLeaf` keeps each
 * leaf read for the search. A listing reads around each miss; a lookup reads
 * only the blocks its path through the index needs.
 */
function htreeAccess(vol: Volume, dir: InodeRecord, onLeaf: (lblk: number, mb: MetadataBlock) => void, around = 1): HtreeDirectory {
  const bs = vol.sb.blockSize;
  const nblocks = Math.ceil(dir.stat.size / bs);
  return {
    blockSize: bs,
    csum: hasMetadataCsum(vol.sb),
    csumSeed: dir.csumSeed,
    largeDir: hasIncompat(vol.sb, Incompat.LARGEDIR),
    hashUnsignedOffset: vol.sb.hashUnsignedOffset,
    hashSeed: vol.sb.hashSeed,
    what: `directory ${dir.stat.ino}`,
    readBlock: async (lblk) => {
      if (lblk >= nblocks) throw new BadHtree(`index points to block ${lblk}, past the directory's end`);
      const [run] = await writtenBlocks(vol, dir, lblk, lblk + 1);
      if (!run) return undefined;
      const mb = await vol.reader.metadata(run.pblk, `directory ${dir.stat.ino}`, run.pblk + 1, around);
      onLeaf(lblk, mb);
      return mb.data;
    },
    searchLeaf: () => undefined,
    onChecksumError: (lblk, reason) => checksumEvent(vol, 'directory index', reason, { ino: dir.stat.ino, block: lblk }),
  };
}

/** A leaf block's entries by name, with what a search reaching it fails with. */
interface LeafIndex {
  byName: Map<string, number>;
  failed?: StrataError;
}

/** What the lookups of one resolve share: parsed leaves, mapped blocks, index blocks whose checksum passed. */
interface SharedLookups {
  leaves: Map<number, LeafIndex>;
  blocks: Map<number, MetadataBlock | undefined>;
  verified: Set<number>;
}

function sharedLookups(): SharedLookups {
  return { leaves: new Map(), blocks: new Map(), verified: new Set() };
}

/**
 * One name through the hash index. `leaves` keeps each leaf parsed once
 * across the lookups of one resolve (a listing of thousands of names reads
 * the same few hundred leaves).
 */
async function indexedLookup(vol: Volume, dir: InodeRecord, name: Buffer, shared = sharedLookups()): Promise<number | undefined> {
  const { leaves, blocks } = shared;
  const blockOf = new Map<number, MetadataBlock>();
  const access = htreeAccess(vol, dir, (lblk, mb) => blockOf.set(lblk, mb));
  return htreeLookup(
    {
      ...access,
      verified: shared.verified,
      readBlock: async (lblk) => {
        if (blocks.has(lblk)) {
          const mb = blocks.get(lblk);
          if (mb) blockOf.set(lblk, mb);
          return mb?.data;
        }
        const data = await access.readBlock(lblk);
        blocks.set(lblk, blockOf.get(lblk));
        if (blocks.size > MAX_SHARED_BLOCKS) blocks.clear();
        return data;
      },
      searchLeaf: (lblk) => {
        let leaf = leaves.get(lblk);
        if (!leaf) {
          const mb = blockOf.get(lblk);
          if (!mb) return undefined;
          const read = leafEntries(vol, dir, lblk, mb, 'lookup');
          const byName = new Map<string, number>();
          for (const e of read.entries) {
            const k = e.name.toString('latin1');
            if (!byName.has(k)) byName.set(k, e.ino);
          }
          leaf = read.failed ? { byName, failed: read.failed } : { byName };
          leaves.set(lblk, leaf);
        }
        const hit = leaf.byName.get(name.toString('latin1'));
        if (hit === undefined && leaf.failed) throw leaf.failed;
        return hit;
      },
    },
    name,
  );
}

export async function lookupInDirectory(vol: Volume, dir: InodeRecord, name: Buffer): Promise<number | undefined> {
  refuseEncrypted(dir);
  if (dir.stat.flags & InodeFlag.INLINE_DATA) {
    const { parent, entries } = inlineEntries(vol, dir);
    if (name.equals(Buffer.from('.'))) return dir.stat.ino;
    if (name.equals(Buffer.from('..'))) return parent;
    return entries.find((e) => e.name.equals(name))?.ino;
  }
  if (isIndexed(vol, dir) && !isDotOrDotDot(name)) {
    try {
      return await indexedLookup(vol, dir, name);
    } catch (err) {
      if (!(err instanceof BadHtree)) throw err;
      // The kernel's answer too: an unusable index falls back to a linear search.
      vol.log({ event: 'ext4.htree_fallback', ino: dir.stat.ino, reason: err.message });
    }
  }
  return linearLookup(vol, dir, name);
}
