import type { FsStatFs } from '@strata/filesystem';
import { crcMatches } from './checksum';
import { corrupt } from './errors';
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

/** statfs(2) as xfs_fs_statfs answers it on a clean read-only mount (no quotas, no realtime). */
export async function computeStatFs(vol: Volume): Promise<FsStatFs> {
  const { sb } = vol;
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
