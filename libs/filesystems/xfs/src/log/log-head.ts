import { corrupt } from '../errors';
import { fsbToLinear } from '../geometry';
import type { Volume } from '../volume';

export const BB = 512;
export const HEADER_MAGIC = 0xfeedbabe;
export const HEADER_CYCLE_SIZE = 32 * 1024;
const UNMOUNT_TRANS = 0x20;
/** How far back from the head a record header is looked for (the largest log buffer is 256 KiB). */
const MAX_RECORD_BBS = (256 * 1024) / BB + 64;
/** The last log buffers that may have completed out of order: XLOG_MAX_ICLOGS of at most 256 KiB. */
const VERIFY_WINDOW_BBS = (8 * 256 * 1024) / BB;

/** The internal log as a ring of 512-byte basic blocks. */
export interface LogArea {
  /** Byte offset of the log in the volume. */
  start: number;
  /** Length in basic blocks. */
  size: number;
  /** `count` blocks from `bb`, wrapping at the end of the ring. */
  read(bb: number, count: number): Promise<Buffer>;
}

export interface LogState {
  /** The last record before the head is a lone unmount record: nothing to recover. */
  clean: boolean;
  /** The block the next record would be written to. */
  head: number;
  /** The oldest block recovery must read (the last record's h_tail_lsn). */
  tail: number;
  cycle: number;
}

export function logArea(vol: Volume): LogArea {
  const { sb } = vol;
  const start = fsbToLinear(sb, sb.logStart, 'log') * sb.blockSize;
  const size = (sb.logBlocks * sb.blockSize) / BB;
  if (sb.logBlocks === 0 || start + size * BB > sb.dblocks * sb.blockSize) throw corrupt('log', `${sb.logBlocks} blocks at ${sb.logStart}`);
  return {
    start,
    size,
    async read(bb: number, count: number): Promise<Buffer> {
      if (count <= 0 || count > size) throw corrupt('log', `read of ${count} blocks`);
      const first = ((bb % size) + size) % size;
      const n1 = Math.min(count, size - first);
      const a = await vol.reader.data(start + first * BB, n1 * BB, 'log');
      if (n1 === count) return a;
      return Buffer.concat([a, await vol.reader.data(start, (count - n1) * BB, 'log')]);
    },
  };
}

/** Header blocks of a record: v2 logs with log buffers over 32 KiB carry extended headers. */
export function headerBlocks(header: Buffer): number {
  const version = header.readUInt32BE(8);
  const hsize = header.readUInt32BE(320);
  return version & 2 && hsize > HEADER_CYCLE_SIZE ? Math.ceil(hsize / HEADER_CYCLE_SIZE) : 1;
}

/**
 * Where the log's head and tail are and whether it is clean, as
 * xlog_find_tail decides for a log without in-flight writes: the head is
 * where the cycle number stamped into every basic block drops (or zeroed
 * blocks begin); the record just before it names the tail, and the log is
 * clean when that record is a lone unmount record.
 */
export async function inspectLog(vol: Volume): Promise<LogState> {
  const log = logArea(vol);
  const { size } = log;
  const cycleOf = async (bb: number): Promise<number> => {
    const b = await log.read(bb, 1);
    return b.readUInt32BE(0) === HEADER_MAGIC ? b.readUInt32BE(4) : b.readUInt32BE(0);
  };
  const firstCycle = await cycleOf(0);
  if (firstCycle === 0) return { clean: true, head: 0, tail: 0, cycle: 0 };
  const lastCycle = await cycleOf(size - 1);
  let head: number;
  let cycle = firstCycle;
  if (lastCycle === 0 || lastCycle !== firstCycle) {
    // Blocks [0, head) carry the current cycle; [head, end) the previous one (or zeros).
    let lo = 0;
    let hi = size - 1;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await cycleOf(mid)) === lastCycle) hi = mid;
      else lo = mid;
    }
    head = hi;
    // Log buffers complete out of order: a block of the older cycle just before the head means the head is there
    // (xlog_find_verify_cycle over the last XLOG_MAX_ICLOGS log buffers).
    const window = Math.min(head, VERIFY_WINDOW_BBS);
    if (window > 0) {
      const blocks = await log.read(head - window, window);
      for (let i = 0; i < window; i++) {
        const at = i * BB;
        const c = blocks.readUInt32BE(at) === HEADER_MAGIC ? blocks.readUInt32BE(at + 4) : blocks.readUInt32BE(at);
        if (c === lastCycle) {
          head = head - window + i;
          break;
        }
      }
    }
  } else {
    head = size;
    cycle = lastCycle;
  }
  for (let back = 1; back <= Math.min(size, MAX_RECORD_BBS); back++) {
    const bb = (head - back + size) % size;
    const b = await log.read(bb, 1);
    if (b.readUInt32BE(0) !== HEADER_MAGIC) continue;
    const len = b.readUInt32BE(12);
    const numOps = b.readUInt32BE(40);
    const tail = Number(b.readBigUInt64BE(24) & 0xffffffffn);
    if (tail >= size) throw corrupt('log', `tail block ${tail} is outside the log`);
    const after = (bb + headerBlocks(b) + Math.ceil(len / BB)) % size;
    let clean = false;
    if (after === head % size && numOps === 1) {
      const op = await log.read(bb + headerBlocks(b), 1);
      clean = (op[9] & UNMOUNT_TRANS) !== 0;
    }
    return { clean, head: head % size, tail: clean ? head % size : tail, cycle };
  }
  throw corrupt('log', 'no record header before the head');
}
