import { Errno, StrataError } from '@strata/errors';
import { AttrData, readAttr } from './attr-data';
import { AttrType } from './attribute';
import { corrupt } from './errors';
import { FileName, parseFileName } from './file-name';
import { applyFixups } from './fixup';
import { Inode, findAttr } from './inode';
import type { Lru } from './lru';
import type { Upcase } from './upcase';
import type { Volume } from './volume';

const I30 = Buffer.from('$I30', 'utf16le');
const ENTRY_NODE = 1;
const ENTRY_END = 2;
/** An index bitmap this large maps 512 GiB of 4 KiB index blocks: more is damage. */
const MAX_BITMAP = 16 * 1024 * 1024;
/** Deeper than any B+ tree of 2^32 names. */
const MAX_DEPTH = 32;

export interface IndexEntry {
  record: number;
  /** Absent on the END entry. */
  key?: FileName;
  /** VCN of the child index block, for node entries. */
  child?: number;
}

/** Entries of an index node: the header at `headerAt`, entries up to its index length (never past `limit`). */
export function parseIndexEntries(buf: Buffer, headerAt: number, limit: number, what: string): IndexEntry[] {
  if (headerAt + 16 > limit) throw corrupt(what, 'index header runs past its block');
  const entriesOffset = buf.readUInt32LE(headerAt);
  const indexLength = buf.readUInt32LE(headerAt + 4);
  const end = headerAt + indexLength;
  let at = headerAt + entriesOffset;
  if (end > limit || at < headerAt + 16 || at >= end) throw corrupt(what, `index header: entries at ${entriesOffset}, length ${indexLength}`);
  const out: IndexEntry[] = [];
  for (;;) {
    if (at + 16 > end) throw corrupt(what, `index entry at ${at} runs past the index`);
    const length = buf.readUInt16LE(at + 8);
    const keyLength = buf.readUInt16LE(at + 10);
    const flags = buf.readUInt16LE(at + 12);
    if (length < 16 || (length & 7) !== 0 || at + length > end) throw corrupt(what, `index entry of length ${length} at ${at}`);
    const entry: IndexEntry = { record: Number(buf.readBigUInt64LE(at) & 0xffffffffffffn) };
    if (flags & ENTRY_NODE) {
      if (length < 24) throw corrupt(what, `node entry of length ${length}`);
      const vcn = buf.readBigInt64LE(at + length - 8);
      if (vcn < 0n || vcn > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(what, `child VCN ${vcn}`);
      entry.child = Number(vcn);
    }
    if (flags & ENTRY_END) {
      out.push(entry);
      return out;
    }
    if (16 + keyLength > length - (flags & ENTRY_NODE ? 8 : 0)) throw corrupt(what, `index key of ${keyLength} bytes at ${at}`);
    entry.key = parseFileName(buf, at + 16, keyLength, what);
    out.push(entry);
    at += length;
  }
}

/** A directory's $I30 index: the root in the MFT record, the blocks in $INDEX_ALLOCATION. */
export class DirectoryIndex {
  private constructor(
    private readonly vol: Volume,
    private readonly dirNo: number,
    readonly rootEntries: IndexEntry[],
    private readonly blockSize: number,
    private readonly vcnBits: number,
    private readonly alloc: AttrData | undefined,
    private readonly bitmap: AttrData | undefined,
    private readonly cache: Lru<string, IndexEntry[]> | undefined,
  ) {}

  /** `cache` keeps parsed index blocks across calls (the image never changes under a reader). */
  static open(vol: Volume, dir: Inode, cache?: Lru<string, IndexEntry[]>): DirectoryIndex {
    const what = `directory index of MFT record ${dir.number}`;
    const root = findAttr(dir, AttrType.INDEX_ROOT, I30);
    if (!root?.resident) throw corrupt(what, 'no resident $INDEX_ROOT');
    const v = root.resident;
    if (v.length < 0x20) throw corrupt(what, `$INDEX_ROOT of ${v.length} bytes`);
    if (v.readUInt32LE(0) !== AttrType.FILE_NAME) throw corrupt(what, `indexes attribute 0x${v.readUInt32LE(0).toString(16)}, not $FILE_NAME`);
    const blockSize = v.readUInt32LE(8);
    if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) throw corrupt(what, `index block size ${blockSize}`);
    const cs = vol.boot.clusterSize;
    const vcnBits = cs <= blockSize ? Math.log2(cs) : 9;
    const entries = parseIndexEntries(v, 0x10, v.length, what);
    return new DirectoryIndex(vol, dir.number, entries, blockSize, vcnBits, findAttr(dir, AttrType.INDEX_ALLOCATION, I30), findAttr(dir, AttrType.BITMAP, I30), cache);
  }

  /** The allocation's size, for stat (undefined without one). */
  get allocation(): AttrData | undefined {
    return this.alloc;
  }

  async block(vcn: number): Promise<IndexEntry[]> {
    const key = `${this.dirNo}:${vcn}`;
    const hit = this.cache?.get(key);
    if (hit) return hit;
    const entries = await this.readBlock(vcn);
    this.cache?.set(key, entries, this.blockSize);
    return entries;
  }

  private async readBlock(vcn: number): Promise<IndexEntry[]> {
    const what = `index block ${vcn} of directory ${this.dirNo}`;
    if (!this.alloc) throw corrupt(what, 'a node entry points into a missing $INDEX_ALLOCATION');
    const offset = vcn * 2 ** this.vcnBits;
    if (!Number.isSafeInteger(offset) || offset + this.blockSize > this.alloc.dataSize) throw corrupt(what, 'lies past the index allocation');
    const raw = await readAttr(this.vol, this.alloc, offset, this.blockSize);
    if (raw.toString('latin1', 0, 4) !== 'INDX') throw corrupt(what, 'magic is not INDX');
    const b = applyFixups(raw, what);
    const own = b.readBigInt64LE(0x10);
    if (own !== BigInt(vcn)) throw corrupt(what, `records VCN ${own}`);
    return parseIndexEntries(b, 0x18, b.length, what);
  }

  /**
   * Every entry in the order ntfs-3g's readdir gives them: the root's
   * entries, then each index block in use (by $BITMAP) in VCN order.
   */
  async all(): Promise<IndexEntry[]> {
    const out = this.rootEntries.filter((e) => e.key);
    if (!this.alloc) return out;
    if (!this.bitmap) throw corrupt(`directory index of MFT record ${this.dirNo}`, '$INDEX_ALLOCATION without $BITMAP');
    const blocks = Math.floor(this.alloc.dataSize / this.blockSize);
    if (blocks > MAX_BITMAP * 8) throw corrupt(`directory index of MFT record ${this.dirNo}`, `$INDEX_ALLOCATION of ${this.alloc.dataSize} bytes`);
    const bits = await readAttr(this.vol, this.bitmap, 0, Math.ceil(blocks / 8));
    for (let byte = 0; byte < bits.length; byte++) {
      if (bits[byte] === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        const i = byte * 8 + bit;
        if (i >= blocks || !(bits[byte] & (1 << bit))) continue;
        for (const e of await this.block((i * this.blockSize) / 2 ** this.vcnBits)) if (e.key) out.push(e);
      }
    }
    return out;
  }

  /**
   * The first entry (in collation order) that `cmp` finds equal, descending
   * the B+ tree: cmp(key) < 0 means the name sorts before the key.
   */
  async find(cmp: (key: FileName) => number, leftmost: boolean): Promise<IndexEntry | undefined> {
    const seen = new Set<number>();
    const visit = async (entries: IndexEntry[], depth: number): Promise<IndexEntry | undefined> => {
      for (const e of entries) {
        const c = e.key ? cmp(e.key) : -1;
        if (c > 0) continue;
        if (c === 0 && !leftmost) return e;
        if (e.child !== undefined) {
          if (depth >= MAX_DEPTH || seen.has(e.child)) throw corrupt(`directory index of MFT record ${this.dirNo}`, `B+ tree loop or depth past ${MAX_DEPTH} at VCN ${e.child}`);
          seen.add(e.child);
          const hit = await visit(await this.block(e.child), depth + 1);
          if (hit) return hit;
        }
        return c === 0 ? e : undefined;
      }
      return undefined;
    };
    return visit(this.rootEntries, 0);
  }

  /** ntfs-3g's lookup: exact (case-sensitive full collation). */
  lookup(name: Buffer, upcase: Upcase): Promise<IndexEntry | undefined> {
    return this.find((key) => upcase.collate(name, key.name, false), false);
  }

  /** ntfs_fix_file_name's search: the first name equal ignoring case. */
  lookupIgnoreCase(name: Buffer, upcase: Upcase): Promise<IndexEntry | undefined> {
    return this.find((key) => upcase.collate(name, key.name, true), true);
  }
}

export function notADirectory(n: number): StrataError {
  return new StrataError(Errno.ENOTDIR, `ntfs: MFT record ${n} is not a directory`);
}
