import type { FsStatFs } from '@strata/filesystem';
import { crcMatches } from './checksum';
import { corrupt } from './errors';
import { locateInode } from './geometry';
import { cowStagingBlocks } from './refcount-btree';
import type { Superblock } from './superblock';
import type { Volume } from './volume';

const AGF_MAGIC = 0x58414746; // 'XAGF'
const AGF_CRC_OFFSET = 216;
const RO_COMPAT_FINOBT = 0x1;
const RO_COMPAT_RMAPBT = 0x2;
const RO_COMPAT_REFLINK = 0x4;
const MAXINUMBER = 2n ** 56n - 1n;
const INODES_PER_CHUNK = 64;
const NAME_MAX = 255;

/**
 * Blocks the free-space btrees hold beyond their roots, summed over the AGs
 * (the kernel's m_allocbt_blks). A read-only mount reads the AGFs, and so
 * counts them, only when it sets up per-AG reservations: with finobt,
 * rmapbt or reflink.
 */
async function allocbtBlocks(vol: Volume): Promise<number> {
  const { sb } = vol;
  if (!(sb.roCompat & (RO_COMPAT_FINOBT | RO_COMPAT_RMAPBT | RO_COMPAT_REFLINK))) return 0;
  let total = 0;
  for (let agno = 0; agno < sb.agCount; agno++) {
    const what = `AGF ${agno}`;
    const buf = (await vol.reader.metadata(agno * sb.agBlocks * sb.blockSize + sb.sectSize, sb.sectSize, what)).data;
    if (buf.readUInt32BE(0) !== AGF_MAGIC || buf.readUInt32BE(8) !== agno) throw corrupt(what, 'bad magic or sequence number');
    if (sb.crc && !crcMatches(buf, 0, sb.sectSize, AGF_CRC_OFFSET)) throw corrupt(what, 'bad CRC');
    let n = buf.readUInt32BE(60);
    if (sb.roCompat & RO_COMPAT_RMAPBT) n -= buf.readUInt32BE(80) - 1;
    if (n > 0) total += n;
  }
  return total;
}

const AGI_MAGIC = 0x58414749; // 'XAGI'
const NULL_AGINO = 0xffffffff;
const AGI_CRC_OFFSET = 312;

/**
 * The summary counters summed from the AG headers, as
 * xfs_initialize_perag_data recomputes them when a log was recovered.
 */
async function countersFromAgHeaders(vol: Volume): Promise<{ fdblocks: number; icount: number; ifree: number }> {
  const { sb } = vol;
  let fdblocks = 0;
  let icount = 0;
  let ifree = 0;
  for (let agno = 0; agno < sb.agCount; agno++) {
    const base = agno * sb.agBlocks * sb.blockSize;
    const agf = (await vol.reader.metadata(base + sb.sectSize, sb.sectSize, `AGF ${agno}`)).data;
    if (agf.readUInt32BE(0) !== AGF_MAGIC || agf.readUInt32BE(8) !== agno) throw corrupt(`AGF ${agno}`, 'bad magic or sequence number');
    if (sb.crc && !crcMatches(agf, 0, sb.sectSize, AGF_CRC_OFFSET)) throw corrupt(`AGF ${agno}`, 'bad CRC');
    fdblocks += agf.readUInt32BE(52) + agf.readUInt32BE(48) + agf.readUInt32BE(60);
    // Recovery ends by freeing leftover copy-on-write staging extents.
    if (sb.roCompat & RO_COMPAT_REFLINK) fdblocks += await cowStagingBlocks(vol, agno, agf.readUInt32BE(88), agf.readUInt32BE(92), agf.readUInt32BE(84));
    const agi = (await vol.reader.metadata(base + 2 * sb.sectSize, sb.sectSize, `AGI ${agno}`)).data;
    if (agi.readUInt32BE(0) !== AGI_MAGIC || agi.readUInt32BE(8) !== agno) throw corrupt(`AGI ${agno}`, 'bad magic or sequence number');
    if (sb.crc && !crcMatches(agi, 0, sb.sectSize, AGI_CRC_OFFSET)) throw corrupt(`AGI ${agno}`, 'bad CRC');
    icount += agi.readUInt32BE(16);
    ifree += agi.readUInt32BE(28);
    // Recovery then frees inodes unlinked while still open (xlog_recover_process_iunlinks): their blocks and themselves.
    const orphans = await unlinkedInodes(vol, agno, agi);
    fdblocks += orphans.blocks;
    ifree += orphans.inodes;
  }
  return { fdblocks, icount, ifree };
}

/** The inodes on an AGI's unlinked lists and the blocks they hold. */
async function unlinkedInodes(vol: Volume, agno: number, agi: Buffer): Promise<{ inodes: number; blocks: number }> {
  const { sb } = vol;
  const what = `unlinked list of AG ${agno}`;
  let inodes = 0;
  let blocks = 0;
  const limit = agi.readUInt32BE(16);
  const seen = new Set<number>();
  for (let bucket = 0; bucket < 64; bucket++) {
    for (let agino = agi.readUInt32BE(40 + bucket * 4); agino !== NULL_AGINO; ) {
      if (++inodes > limit || seen.has(agino)) throw corrupt(what, 'the unlinked list loops or outgrows the AG');
      seen.add(agino);
      const loc = locateInode(sb, agno * 2 ** (sb.agBlkLog + sb.inopbLog) + agino);
      if (!loc) throw corrupt(what, `inode ${agino} is outside the AG`);
      const raw = (await vol.reader.metadata(loc.offset, sb.inodeSize, what)).data;
      if (raw.readUInt16BE(0) !== 0x494e) throw corrupt(what, `inode ${agino} has a bad magic`);
      blocks += Number(raw.readBigUInt64BE(64) & 0xffffffffffffn);
      agino = raw.readUInt32BE(96);
    }
  }
  return { inodes, blocks };
}

/**
 * statfs(2) as xfs_fs_statfs answers it on a read-only mount (no quotas,
 * no realtime): from the superblock's counters on a clean filesystem, from
 * the AG headers after log recovery.
 */
export async function computeStatFs(vol: Volume, recovered = false, pendingFreeBlocks = 0): Promise<FsStatFs> {
  const sb = recovered ? { ...vol.sb, ...(await countersFromAgHeaders(vol)) } : vol.sb;
  if (recovered) sb.fdblocks += pendingFreeBlocks;
  const setAside = sb.agCount * 8;
  const logBlocks = sb.logStart ? sb.logBlocks : 0;
  const bfree = Math.max(0, sb.fdblocks - setAside - (await allocbtBlocks(vol)));
  const files = fileCount(sb, bfree);
  return {
    bsize: sb.blockSize,
    frsize: sb.blockSize,
    blocks: sb.dblocks - logBlocks,
    bfree,
    bavail: bfree,
    files,
    ffree: Math.max(0, files - (sb.icount - sb.ifree)),
    namemax: NAME_MAX,
  };
}

function fileCount(sb: Superblock, bfree: number): number {
  const fakeInos = BigInt(bfree) << BigInt(sb.inopbLog);
  let files = BigInt(sb.icount) + fakeInos;
  if (files > MAXINUMBER) files = MAXINUMBER;
  const iallocBlocks = BigInt(Math.max(INODES_PER_CHUNK, sb.inodesPerBlock) >> sb.inopbLog);
  if (sb.imaxPct && iallocBlocks) {
    const chunks = (BigInt(sb.dblocks) * BigInt(sb.imaxPct)) / 100n / iallocBlocks;
    const maxicount = (chunks * iallocBlocks) << BigInt(sb.inopbLog);
    if (maxicount && files > maxicount) files = maxicount;
  }
  if (files < BigInt(sb.icount)) files = BigInt(sb.icount);
  return Number(files);
}
