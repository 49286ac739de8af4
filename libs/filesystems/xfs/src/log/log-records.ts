import { crc32c } from '@strata/filesystem';
import { corrupt, unsupported } from '../errors';
import { BB, HEADER_CYCLE_SIZE, HEADER_MAGIC, LogArea, headerBlocks } from './log-head';

/** One log record between tail and head: its LSN and its payload with the stamped cycle words restored. */
export interface LogRecord {
  lsn: bigint;
  block: number;
  numOps: number;
  data: Buffer;
}

const FMT_LINUX_LE = 1;
const REC_SIZE = 324;
const REC_SIZE_OTHER = 328;
const CYCLE_WORDS = HEADER_CYCLE_SIZE / BB;
const ZERO4 = Buffer.alloc(4);

/** xlog_cksum: CRC-32C of the header (its CRC field as zeros), the extended headers, then the payload. */
export function recordCrc(header: Buffer, hdrSize: number, xheads: number, data: Buffer): number {
  let c = crc32c(0xffffffff, header, 0, 32);
  c = crc32c(c, ZERO4);
  c = crc32c(c, header, 36, hdrSize);
  for (let i = 1; i < xheads; i++) c = crc32c(c, header, i * BB, i * BB + 4 + CYCLE_WORDS * 4);
  c = crc32c(c, data);
  return ~c >>> 0;
}

/** The active part of the log recovery holds in memory at most (its transactions are kept until replay). */
const MAX_ACTIVE_LOG_BYTES = 1024 * 1024 * 1024;
/** The last log buffers a crash can leave half written: XLOG_MAX_ICLOGS of at most 256 KiB. */
const TORN_WINDOW_BBS = (8 * 256 * 1024) / BB;

/**
 * The records from tail to head, as xlog_do_recovery_pass reads them:
 * header checks, the record CRC (v5), and the first word of every payload
 * block put back from the header's cycle data. A damaged record among the
 * last log buffers before the head is a write torn by the crash: the head
 * moves back to it, as xlog_verify_head does; further back it is damage.
 */
export async function readRecords(log: LogArea, tail: number, head: number, crc: boolean, onRecord: (r: LogRecord) => void = () => undefined): Promise<number> {
  let count = 0;
  const span = (head - tail + log.size) % log.size;
  if (span * BB > MAX_ACTIVE_LOG_BYTES) throw unsupported(`log recovery of ${span * BB} bytes of log (more than ${MAX_ACTIVE_LOG_BYTES})`);
  let walked = 0;
  while (walked < span) {
    const blk = (tail + walked) % log.size;
    const rec = await readRecord(log, blk, crc);
    if (typeof rec === 'string' || walked + rec.blocks > span) {
      const damage = typeof rec === 'string' ? rec : 'runs past the head';
      if (span - walked <= TORN_WINDOW_BBS) return count;
      throw corrupt(`log record at block ${blk}`, damage);
    }
    onRecord(rec.record);
    count++;
    walked += rec.blocks;
  }
  return count;
}

/** One record, or what is wrong with it. */
async function readRecord(log: LogArea, blk: number, crc: boolean): Promise<{ record: LogRecord; blocks: number } | string> {
  const first = await log.read(blk, 1);
  if (first.readUInt32BE(0) !== HEADER_MAGIC) return 'bad magic';
  const version = first.readUInt32BE(8);
  if (version === 0 || version & ~3) return `version ${version}`;
  const len = first.readUInt32BE(12);
  const hblks = headerBlocks(first);
  const bblks = Math.ceil(len / BB);
  if (len === 0 || hblks + bblks > log.size || len > 2 * 1024 * 1024) return `length ${len}`;
  if (first.readUInt32BE(300) !== FMT_LINUX_LE) throw unsupported(`log written by a host of another byte order (format ${first.readUInt32BE(300)})`);
  const header = hblks === 1 ? first : await log.read(blk, hblks);
  const data = Buffer.from(await log.read(blk + hblks, bblks)).subarray(0, len);
  if (crc) {
    const stored = header.readUInt32LE(32);
    if (stored !== recordCrc(header, REC_SIZE, hblks, data) && stored !== recordCrc(header, REC_SIZE_OTHER, hblks, data)) return 'bad CRC';
  }
  for (let i = 0; i < bblks && i * BB < len; i++) {
    const word = i < CYCLE_WORDS ? 44 + i * 4 : Math.floor(i / CYCLE_WORDS) * BB + 4 + (i % CYCLE_WORDS) * 4;
    if (word + 4 > header.length) return 'cycle data missing';
    header.copy(data, i * BB, word, word + 4);
  }
  return { record: { lsn: first.readBigUInt64BE(16), block: blk, numOps: first.readUInt32BE(40), data }, blocks: hblks + bblks };
}
