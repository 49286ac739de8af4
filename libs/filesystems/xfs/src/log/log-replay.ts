import { corrupt, unsupported } from '../errors';
import { inodeClusterBlocks } from '../geometry';
import type { Superblock } from '../superblock';
import type { LogItem, Transaction } from './log-transactions';
import { bufferLsn, restampCrc, restampInodes } from './restamp';
import type { SectorOverlay } from './sector-overlay';

const BB = 512;
const LI = {
  EFI: 0x1236, EFD: 0x1237, INODE: 0x123b, BUF: 0x123c, DQUOT: 0x123d, QUOTAOFF: 0x123e, ICREATE: 0x123f,
  RUI: 0x1240, RUD: 0x1241, CUI: 0x1242, CUD: 0x1243, BUI: 0x1244, BUD: 0x1245, ATTRI: 0x1246, ATTRD: 0x1247, XMI: 0x1248, XMD: 0x1249,
} as const;
const INTENT_NAMES = new Map<number, string>([[LI.EFI, 'extent free'], [LI.RUI, 'rmap'], [LI.CUI, 'refcount'], [LI.BUI, 'bmap'], [LI.ATTRI, 'xattr'], [LI.XMI, 'mapping exchange']]);
/** Intents whose unfinished work changes what files hold: recovery without them would show a wrong tree. */
const TREE_INTENTS = new Set<number>([LI.BUI, LI.ATTRI, LI.XMI]);
const DONE_OF = new Map<number, number>([[LI.EFD, LI.EFI], [LI.RUD, LI.RUI], [LI.CUD, LI.CUI], [LI.BUD, LI.BUI], [LI.ATTRD, LI.ATTRI], [LI.XMD, LI.XMI]]);

const BLF_INODE_BUF = 0x1;
const BLF_CANCEL = 0x2;
const BLF_DQUOT_BUF = 0x4 | 0x8 | 0x10;
const BLF_CHUNK = 128;
const NEXT_UNLINKED = 96;

const ILOG = { CORE: 0x1, DDATA: 0x2, DEXT: 0x4, DBROOT: 0x8, DEV: 0x10, ADATA: 0x40, AEXT: 0x80, ABROOT: 0x100 } as const;
const DFORK = ILOG.DDATA | ILOG.DEXT | ILOG.DBROOT;
const AFORK = ILOG.ADATA | ILOG.AEXT | ILOG.ABROOT;

/** Reads volume bytes as recovery sees them so far (the image under the overlay). */
export type ViewReader = (offset: number, length: number) => Promise<Buffer>;

interface Replayer {
  sb: Superblock;
  read: ViewReader;
  overlay: SectorOverlay;
  cancels: Map<string, number>;
  intents: Map<string, { type: number; blocks: number }>;
  limit: number;
}

export interface ReplayResult {
  buffers: number;
  inodes: number;
  /** Blocks that unfinished extent-free intents would release. */
  pendingFreeBlocks: number;
  /** Kinds of unfinished intents that only touch space accounting (extent free, rmap, refcount). */
  pendingIntents: string[];
}

/**
 * Applies the committed transactions to an in-memory overlay as the
 * kernel's two recovery passes do: pass 1 collects cancelled buffers, pass
 * 2 replays buffers (regions by dirty bitmap, skipped when the block on
 * disk is already newer), inodes (the logged core converted to disk format,
 * forks, bmap btree roots), inode chunk creations, and pairs intents with
 * their done items. Unfinished intents would need the kernel's deferred
 * work (freeing extents, updating btrees): refused.
 */
export async function replayLog(sb: Superblock, transactions: readonly Transaction[], read: ViewReader, overlay: SectorOverlay, volumeBytes: number): Promise<ReplayResult> {
  const r: Replayer = { sb, read, overlay, cancels: new Map(), intents: new Map(), limit: volumeBytes };
  for (const t of transactions) {
    for (const item of t.items) {
      if (itemType(item) === LI.BUF && bufFlags(item) & BLF_CANCEL) {
        const key = bufKey(item);
        r.cancels.set(key, (r.cancels.get(key) ?? 0) + 1);
      }
    }
  }
  let buffers = 0;
  let inodes = 0;
  for (const t of transactions) {
    for (const item of reorder(t.items)) {
      const type = itemType(item);
      if (type === LI.BUF) {
        if (await replayBuffer(r, item, t.lsn)) buffers++;
      } else if (type === LI.INODE) {
        if (await replayInode(r, item, t.lsn)) inodes++;
      } else if (type === LI.ICREATE) {
        await replayIcreate(r, item);
      } else if (INTENT_NAMES.has(type)) {
        r.intents.set(`${type}:${intentId(item)}`, { type, blocks: type === LI.EFI ? efiBlocks(item) : 0 });
      } else if (DONE_OF.has(type)) {
        r.intents.delete(`${DONE_OF.get(type)}:${intentId(item)}`);
      } else if (type !== LI.DQUOT && type !== LI.QUOTAOFF) {
        throw corrupt('log', `unknown log item type 0x${type.toString(16)}`);
      }
    }
  }
  const pending = [...r.intents.values()];
  const changesTree = [...new Set(pending.filter((p) => TREE_INTENTS.has(p.type)).map((p) => INTENT_NAMES.get(p.type)))];
  if (changesTree.length > 0) throw unsupported(`XFS log recovery with unfinished ${changesTree.join(', ')} intents (deferred work the kernel would finish)`);
  return {
    buffers,
    inodes,
    pendingFreeBlocks: pending.reduce((n, p) => n + p.blocks, 0),
    pendingIntents: [...new Set(pending.map((p) => INTENT_NAMES.get(p.type) ?? ''))],
  };
}

/** Blocks an extent-free intent names: 16-byte extents from 64-bit hosts, packed 12-byte ones from 32-bit hosts. */
function efiBlocks(item: LogItem): number {
  const f = item.regions[0];
  const n = f.readUInt32LE(4);
  const size = n > 0 && f.length === 16 + n * 12 ? 12 : 16;
  if (f.length < 16 + n * size) throw corrupt('log', `extent free intent of ${n} extents in ${f.length} bytes`);
  let blocks = 0;
  for (let i = 0; i < n; i++) blocks += f.readUInt32LE(16 + i * size + 8);
  return blocks;
}

function itemType(item: LogItem): number {
  return item.regions[0].length >= 2 ? item.regions[0].readUInt16LE(0) : 0;
}

function bufFlags(item: LogItem): number {
  return item.regions[0].length >= 24 ? item.regions[0].readUInt16LE(4) : 0;
}

function bufKey(item: LogItem): string {
  const f = item.regions[0];
  if (f.length < 24) throw corrupt('log', 'buffer item format too short');
  return `${f.readBigInt64LE(8)}:${f.readUInt16LE(6)}`;
}

function intentId(item: LogItem): bigint {
  if (item.regions[0].length < 16) throw corrupt('log', 'intent item too short');
  return item.regions[0].readBigUInt64LE(8);
}

/** xlog_recover_reorder_trans: buffers first, then other items, then inode buffers, then cancellations. */
function reorder(items: readonly LogItem[]): LogItem[] {
  const buffers: LogItem[] = [];
  const others: LogItem[] = [];
  const inodeBufs: LogItem[] = [];
  const cancels: LogItem[] = [];
  for (const item of items) {
    if (item.regions.length === 0) throw corrupt('log', 'committed log item has no regions');
    if (itemType(item) !== LI.BUF) others.push(item);
    else if (bufFlags(item) & BLF_CANCEL) cancels.unshift(item);
    else if (bufFlags(item) & BLF_INODE_BUF) inodeBufs.unshift(item);
    else buffers.push(item);
  }
  return [...buffers, ...others, ...inodeBufs, ...cancels];
}

async function readBuffer(r: Replayer, daddr: bigint, bbs: number, what: string): Promise<Buffer> {
  const offset = Number(daddr) * BB;
  const length = bbs * BB;
  if (daddr < 0n || !Number.isSafeInteger(offset) || length <= 0 || offset + length > r.limit) throw corrupt(what, `buffer of ${bbs} sectors at ${daddr}`);
  return Buffer.from(await r.read(offset, length));
}

/** The logged 128-byte chunk runs of a buffer item: [buffer offset, region index]. */
function dirtyRuns(item: LogItem, bufLength: number, what: string): { offset: number; data: Buffer }[] {
  const f = item.regions[0];
  const mapSize = f.readUInt32LE(16);
  if (20 + mapSize * 4 > f.length) throw corrupt(what, `dirty map of ${mapSize} words`);
  const bit = (n: number): boolean => ((f.readUInt32LE(20 + (n >> 5) * 4) >>> (n & 31)) & 1) === 1;
  const runs: { offset: number; data: Buffer }[] = [];
  let region = 1;
  for (let n = 0; n < mapSize * 32; ) {
    if (!bit(n)) {
      n++;
      continue;
    }
    let end = n;
    while (end < mapSize * 32 && bit(end)) end++;
    const data = item.regions[region++];
    if (!data) throw corrupt(what, 'fewer regions than dirty runs');
    const chunks = Math.min(end - n, Math.floor(data.length / BLF_CHUNK));
    if ((n + (end - n)) * BLF_CHUNK > bufLength) throw corrupt(what, `dirty bitmap (bit ${n}, ${end - n} bits) for a ${bufLength}-byte buffer`);
    runs.push({ offset: n * BLF_CHUNK, data: data.subarray(0, chunks * BLF_CHUNK) });
    n = end;
  }
  return runs;
}

async function replayBuffer(r: Replayer, item: LogItem, lsn: bigint): Promise<boolean> {
  const f = item.regions[0];
  const key = bufKey(item);
  const flags = f.readUInt16LE(4);
  if (flags & BLF_CANCEL) {
    const n = r.cancels.get(key) ?? 0;
    if (n <= 1) r.cancels.delete(key);
    else r.cancels.set(key, n - 1);
    return false;
  }
  if (r.cancels.has(key)) return false;
  const daddr = f.readBigInt64LE(8);
  const what = `logged buffer at sector ${daddr}`;
  const buf = await readBuffer(r, daddr, f.readUInt16LE(6), what);
  const onDisk = bufferLsn(r.sb, buf);
  if (onDisk !== undefined && onDisk !== 0n && onDisk !== 0xffffffffffffffffn && onDisk >= lsn) return false;
  const runs = dirtyRuns(item, buf.length, what);
  if (flags & BLF_DQUOT_BUF) return false;
  if (flags & BLF_INODE_BUF) {
    // Only the unlinked-list pointers of an inode buffer are replayed (xlog_recover_do_inode_buffer).
    for (let at = NEXT_UNLINKED; at + 4 <= buf.length; at += r.sb.inodeSize) {
      const run = runs.find((x) => at >= x.offset && at + 4 <= x.offset + x.data.length);
      if (run) run.data.copy(buf, at, at - run.offset, at - run.offset + 4);
    }
    restampInodes(r.sb, buf);
  } else {
    for (const run of runs) run.data.copy(buf, run.offset);
    restampCrc(r.sb, buf);
  }
  r.overlay.write(Number(daddr) * BB, buf);
  return true;
}

function convertTime(src: Buffer, at: number, dst: Buffer, bigtime: boolean): void {
  if (bigtime) {
    dst.writeBigUInt64BE(src.readBigUInt64LE(at), at);
  } else {
    dst.writeInt32BE(src.readInt32LE(at), at);
    dst.writeInt32BE(src.readInt32LE(at + 4), at + 4);
  }
}

/** xfs_log_dinode_to_disk: the logged core (host byte order, little-endian here) written over the on-disk inode. */
function logDinodeToDisk(ld: Buffer, dip: Buffer, lsn: bigint): void {
  const version = ld.readInt8(4);
  const flags2 = version >= 3 && ld.length >= 128 ? ld.readBigUInt64LE(120) : 0n;
  const bigtime = (flags2 & 0x8n) !== 0n;
  dip.writeUInt16BE(ld.readUInt16LE(0), 0);
  dip.writeUInt16BE(ld.readUInt16LE(2), 2);
  dip[4] = ld[4];
  dip[5] = ld[5];
  dip.writeUInt16BE(0, 6);
  dip.writeUInt32BE(ld.readUInt32LE(8), 8);
  dip.writeUInt32BE(ld.readUInt32LE(12), 12);
  dip.writeUInt32BE(ld.readUInt32LE(16), 16);
  dip.writeUInt16BE(ld.readUInt16LE(20), 20);
  dip.writeUInt16BE(ld.readUInt16LE(22), 22);
  for (const at of [32, 40, 48]) convertTime(ld, at, dip, bigtime);
  dip.writeBigUInt64BE(ld.readBigUInt64LE(56), 56);
  dip.writeBigUInt64BE(ld.readBigUInt64LE(64), 64);
  dip.writeUInt32BE(ld.readUInt32LE(72), 72);
  dip[82] = ld[82];
  dip[83] = ld[83];
  dip.writeUInt32BE(ld.readUInt32LE(84), 84);
  dip.writeUInt16BE(ld.readUInt16LE(88), 88);
  dip.writeUInt16BE(ld.readUInt16LE(90), 90);
  dip.writeUInt32BE(ld.readUInt32LE(92), 92);
  if (version === 3) {
    dip.writeBigUInt64BE(ld.readBigUInt64LE(104), 104);
    convertTime(ld, 144, dip, bigtime);
    dip.writeBigUInt64BE(flags2, 120);
    dip.writeUInt32BE(ld.readUInt32LE(128), 128);
    dip.writeBigUInt64BE(ld.readBigUInt64LE(152), 152);
    dip.writeBigUInt64BE(lsn, 112);
    dip.fill(0, 132, 144);
    ld.copy(dip, 160, 160, 176);
    dip.writeBigUInt64BE(0n, 24);
  } else {
    dip.fill(0, 24, 30);
    dip.writeUInt16BE(ld.readUInt16LE(30), 30);
  }
  if ((flags2 & 0x10n) !== 0n) {
    dip.writeBigUInt64BE(ld.readBigUInt64LE(24), 24);
    dip.writeUInt32BE(ld.readUInt32LE(76), 76);
    dip.writeUInt16BE(ld.readUInt16LE(80), 80);
  } else {
    dip.writeUInt32BE(ld.readUInt32LE(76), 76);
    dip.writeUInt16BE(ld.readUInt16LE(80), 80);
  }
}

/** xfs_bmbt_to_bmdr: an in-memory bmap btree root (long block header, keys, pointers) into the inode's compact root. */
function bmbtToBmdr(sb: Superblock, src: Buffer, dst: Buffer, what: string): void {
  const hdr = sb.crc ? 72 : 24;
  if (src.length < hdr || dst.length < 4) throw corrupt(what, 'btree root too small');
  const numrecs = src.readUInt16BE(6);
  const srcMax = Math.floor((src.length - hdr) / 16);
  const dstMax = Math.floor((dst.length - 4) / 16);
  if (numrecs > srcMax || numrecs > dstMax) throw corrupt(what, `btree root of ${numrecs} records`);
  dst.writeUInt16BE(src.readUInt16BE(4), 0);
  dst.writeUInt16BE(numrecs, 2);
  src.copy(dst, 4, hdr, hdr + numrecs * 8);
  src.copy(dst, 4 + dstMax * 8, hdr + srcMax * 8, hdr + srcMax * 8 + numrecs * 8);
}

async function replayInode(r: Replayer, item: LogItem, lsn: bigint): Promise<boolean> {
  const { sb } = r;
  let f = item.regions[0];
  if (f.length === 52) {
    // A 32-bit host's format, without the padding before ilf_ino.
    const wide = Buffer.alloc(56);
    f.copy(wide, 0, 0, 12);
    f.copy(wide, 16, 12, 52);
    f = wide;
  }
  if (f.length < 56) throw corrupt('log', 'inode item format too short');
  const fields = f.readUInt32LE(4);
  const ino = f.readBigUInt64LE(16);
  const blkno = f.readBigInt64LE(40);
  const len = f.readInt32LE(48);
  const boffset = f.readInt32LE(52);
  const what = `logged inode ${ino}`;
  if (r.cancels.has(`${blkno}:${len}`)) return false;
  const buf = await readBuffer(r, blkno, len, what);
  if (boffset < 0 || boffset + sb.inodeSize > buf.length) throw corrupt(what, `offset ${boffset} in a ${buf.length}-byte buffer`);
  const dip = buf.subarray(boffset, boffset + sb.inodeSize);
  if (dip.readUInt16BE(0) !== 0x494e) throw corrupt(what, 'bad inode magic in the buffer');
  const ld = item.regions[1];
  if (!ld || ld.length < 96 || ld.readUInt16LE(0) !== 0x494e) throw corrupt(what, 'bad logged inode core');
  if (ld.length > (sb.crc ? 176 : 96)) throw corrupt(what, `logged core of ${ld.length} bytes`);
  if (dip[4] >= 3) {
    const diskLsn = dip.readBigUInt64BE(112);
    if (diskLsn !== 0n && diskLsn !== 0xffffffffffffffffn && diskLsn > lsn) return false;
  }
  const core = Buffer.alloc(sb.crc ? 176 : 96);
  ld.copy(core);
  if (!sb.crc) {
    const logged = core.readUInt16LE(30);
    const disk = dip.readUInt16BE(30);
    if (logged < disk && !(disk === 0xffff && logged < 0x7fff)) return false;
    core.writeUInt16LE(0, 30);
  }
  if (core[82] * 8 > sb.inodeSize) throw corrupt(what, `fork offset ${core[82]}`);
  logDinodeToDisk(core, dip, lsn);
  if (fields & ILOG.DEV) dip.writeUInt32BE(f.readUInt32LE(24), sb.crc ? 176 : 100);
  const coreSize = dip[4] >= 3 ? 176 : 100;
  const forkoff = dip[82] * 8;
  const dsize = forkoff ? forkoff : sb.inodeSize - coreSize;
  const dfork = dip.subarray(coreSize, coreSize + dsize);
  const afork = dip.subarray(coreSize + dsize, sb.inodeSize);
  // The attribute fork's region follows the data fork's when both were logged.
  if (fields & DFORK) {
    const src = item.regions[2];
    if (!src) throw corrupt(what, 'data fork region missing');
    if (fields & ILOG.DBROOT) bmbtToBmdr(sb, src, dfork, what);
    else if (src.length > dfork.length) throw corrupt(what, 'data fork region too large');
    else src.copy(dfork);
  }
  if (fields & AFORK) {
    const src = item.regions[fields & DFORK ? 3 : 2];
    if (!src) throw corrupt(what, 'attribute fork region missing');
    if (fields & ILOG.ABROOT) bmbtToBmdr(sb, src, afork, what);
    else if (src.length > afork.length) throw corrupt(what, 'attribute fork region too large');
    else src.copy(afork);
  }
  restampInodes(sb, dip);
  r.overlay.write(Number(blkno) * BB, buf);
  return true;
}

/** xlog_recover_icreate_commit_pass2: a new inode chunk, every inode free (unless its buffers were cancelled). */
async function replayIcreate(r: Replayer, item: LogItem): Promise<void> {
  const { sb } = r;
  const f = item.regions[0];
  if (f.length < 28) throw corrupt('log', 'inode create item too short');
  const agno = f.readUInt32BE(4);
  const agbno = f.readUInt32BE(8);
  const count = f.readUInt32BE(12);
  const isize = f.readUInt32BE(16);
  const length = f.readUInt32BE(20);
  const gen = f.readUInt32BE(24);
  const what = `logged inode chunk at AG ${agno} block ${agbno}`;
  if (agno >= sb.agCount || agbno === 0 || agbno + length > sb.agBlocks || isize !== sb.inodeSize || count === 0 || count / sb.inodesPerBlock !== length) {
    throw corrupt(what, `${count} inodes in ${length} blocks`);
  }
  const blocksPerCluster = inodeClusterBlocks(sb);
  const bbPerCluster = (blocksPerCluster * sb.blockSize) / BB;
  const firstByte = (agno * sb.agBlocks + agbno) * sb.blockSize;
  for (let b = 0; b < length; b += blocksPerCluster) {
    if (r.cancels.has(`${(firstByte + b * sb.blockSize) / BB}:${bbPerCluster}`)) return;
  }
  const buf = Buffer.alloc(length * sb.blockSize);
  const firstIno = agno * 2 ** (sb.agBlkLog + sb.inopbLog) + agbno * sb.inodesPerBlock;
  for (let i = 0; i < count; i++) {
    const at = i * sb.inodeSize;
    buf.writeUInt16BE(0x494e, at);
    buf[at + 4] = sb.crc ? 3 : 2;
    buf.writeUInt32BE(gen, at + 92);
    buf.writeUInt32BE(0xffffffff, at + NEXT_UNLINKED);
    if (sb.crc) {
      buf.writeBigUInt64BE(BigInt(firstIno + i), at + 152);
      sb.metaUuid.copy(buf, at + 160);
    }
  }
  restampInodes(sb, buf);
  r.overlay.write(firstByte, buf);
}
