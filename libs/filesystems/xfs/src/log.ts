import { corrupt } from './errors';
import { fsbToLinear } from './geometry';
import type { Volume } from './volume';

const BB = 512;
const HEADER_MAGIC = 0xfeedbabe;
const UNMOUNT_TRANS = 0x20;
const HEADER_CYCLE_SIZE = 32 * 1024;
/** How far back from the head a record header is looked for (the largest log buffer is 256 KiB). */
const MAX_RECORD_BBS = (256 * 1024) / BB + 64;

export interface LogState {
  /** The last record before the head is an unmount record: nothing to recover. */
  clean: boolean;
  headBlock: number;
  cycle: number;
}

/**
 * Whether the internal log is clean, decided as xlog_find_tail does for a
 * log without in-flight writes: the head is where the cycle number stamped
 * into every 512-byte block drops (or where zeroed blocks begin), and the
 * log is clean when the record just before it is a lone unmount record.
 */
export async function inspectLog(vol: Volume): Promise<LogState> {
  const { sb } = vol;
  const start = fsbToLinear(sb, sb.logStart, 'log') * sb.blockSize;
  const size = (sb.logBlocks * sb.blockSize) / BB;
  if (sb.logBlocks === 0 || start + size * BB > sb.dblocks * sb.blockSize) throw corrupt('log', `${sb.logBlocks} blocks at ${sb.logStart}`);
  const block = (bb: number): Promise<Buffer> => vol.reader.data(start + bb * BB, BB, 'log');
  const cycleOf = async (bb: number): Promise<number> => {
    const b = await block(bb);
    return b.readUInt32BE(0) === HEADER_MAGIC ? b.readUInt32BE(4) : b.readUInt32BE(0);
  };
  const firstCycle = await cycleOf(0);
  if (firstCycle === 0) return { clean: true, headBlock: 0, cycle: 0 };
  const lastCycle = await cycleOf(size - 1);
  let head: number;
  let cycle = firstCycle;
  if (lastCycle === 0 || lastCycle !== firstCycle) {
    // Blocks [0, head) carry the current cycle; [head, end) the previous one (or zeros).
    const stop = lastCycle;
    let lo = 0;
    let hi = size - 1;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await cycleOf(mid)) === stop) hi = mid;
      else lo = mid;
    }
    head = hi;
  } else {
    head = size;
    cycle = lastCycle;
  }
  for (let back = 1; back <= Math.min(size, MAX_RECORD_BBS); back++) {
    const bb = (head - back + size) % size;
    const b = await block(bb);
    if (b.readUInt32BE(0) !== HEADER_MAGIC) continue;
    const version = b.readUInt32BE(8);
    const len = b.readUInt32BE(12);
    const numOps = b.readUInt32BE(40);
    const hsize = b.readUInt32BE(320);
    const hblks = version === 2 && hsize > HEADER_CYCLE_SIZE ? Math.ceil(hsize / HEADER_CYCLE_SIZE) : 1;
    const after = (bb + hblks + Math.ceil(len / BB)) % size;
    if (after !== head % size || numOps !== 1) return { clean: false, headBlock: head % size, cycle };
    const op = await block((bb + hblks) % size);
    return { clean: (op[9] & UNMOUNT_TRANS) !== 0, headBlock: head % size, cycle };
  }
  return { clean: false, headBlock: head % size, cycle };
}
