import { Errno, StrataError } from '@strata/errors';
import { crc32c } from '../crc32c';
import { guidText } from '../partitions/gpt';
import type { FileReader } from '../store-file';
import { corrupt, type VhdxHeader } from './structures';

/**
 * The VHDX metadata log (MS-VHDX 2.3): a circular buffer of 4 KiB sectors
 * holding entries, each a header ('loge'), descriptors ('desc' for a 4 KiB
 * write, 'zero' for a zeroed run) and one data sector ('data') per write
 * descriptor. Writers log metadata updates (BAT, metadata region) before
 * making them; a file closed uncleanly may hold logged writes not yet in
 * place. We replay the active sequence in memory, as an overlay of 4 KiB
 * sectors over the file, which is never written.
 */
const SECTOR = 4096;
/** The unit the replay overlay replaces (a 4 KiB VHDX log sector). */
export const REPLAY_SECTOR = SECTOR;
const MiB = 1024 * 1024;
/** Larger logs are refused rather than held in memory (Hyper-V and qemu write 1 MiB). */
const MAX_LOG_BYTES = 32 * MiB;
/** Bytes of entry checksums one open may compute: a hostile log of overlapping entries cannot make the search quadratic without bound. */
const MAX_CRC_BYTES = 512 * MiB;
/** Zeroed sectors one replay may record. */
const MAX_ZERO_SECTORS = 256 * 1024;

interface Entry {
  /** Offset of the entry in the log, in bytes. */
  at: number;
  length: number;
  sequence: bigint;
  flushedFileOffset: number;
  lastFileOffset: number;
  descriptors: number;
}

/** A VHDX file with a replayed log laid over it. */
export class ReplayedFile implements FileReader {
  readonly label: string;

  constructor(
    private readonly file: FileReader,
    /** 4 KiB sector index → its bytes after replay (null: zeroed). */
    private readonly sectors: ReadonlyMap<number, Buffer | null>,
    readonly size: number,
  ) {
    this.label = file.label;
  }

  /** The file under the overlay. */
  get base(): FileReader {
    return this.file;
  }

  /** Whether 4 KiB sector `sector` comes from the replayed log, not the file. */
  replaced(sector: number): boolean {
    return this.sectors.has(sector);
  }

  async readInto(target: Buffer, targetOffset: number, length: number, position: number): Promise<void> {
    if (position < 0 || position + length > this.size) {
      throw new StrataError(Errno.EIO, `image ${this.label}: read of ${length} bytes at file offset ${position} is past the end of the file (${this.size} bytes after log replay)`);
    }
    const inFile = Math.max(0, Math.min(length, this.file.size - position));
    if (inFile > 0) await this.file.readInto(target, targetOffset, inFile, position);
    // The log may have grown the file: what lies past the real end reads as zeros until a logged write says otherwise.
    target.fill(0, targetOffset + inFile, targetOffset + length);
    const end = position + length;
    for (let s = Math.floor(position / SECTOR); s * SECTOR < end; s++) {
      if (!this.sectors.has(s)) continue;
      const bytes = this.sectors.get(s) ?? null;
      const from = Math.max(position, s * SECTOR);
      const to = Math.min(end, (s + 1) * SECTOR);
      if (bytes) bytes.copy(target, targetOffset + (from - position), from - s * SECTOR, to - s * SECTOR);
      else target.fill(0, targetOffset + (from - position), targetOffset + (to - position));
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    await this.readInto(buf, 0, length, position);
    return buf;
  }
}

function u64(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/**
 * Finds the active sequence of the log and replays it over `file`: the
 * highest-numbered run of valid entries, each numbered one more than the
 * last and following it in the buffer (as qemu searches). Undefined when the
 * log holds nothing to replay.
 */
export async function replayLog(file: FileReader, header: VhdxHeader, label: string): Promise<ReplayedFile | undefined> {
  const { logOffset, logLength } = header;
  if (logLength === 0) return undefined;
  if (logLength % MiB !== 0 || logOffset % MiB !== 0 || logOffset < MiB || logOffset + logLength > file.size) {
    throw corrupt(label, `log of ${logLength} bytes at file offset ${logOffset} does not lie in the file on 1 MiB boundaries`);
  }
  if (logLength > MAX_LOG_BYTES) {
    throw new StrataError(Errno.EOPNOTSUPP, `VHDX ${label}: VHDX log needs replay and is ${logLength} bytes, more than the ${MAX_LOG_BYTES} replayed in memory`);
  }
  const log = await file.read(logOffset, logLength);
  const sectorCount = logLength / SECTOR;
  /** `count` sectors from sector `first`, wrapping around the end of the buffer. */
  const sectors = (first: number, count: number): Buffer => {
    const start = (first % sectorCount) * SECTOR;
    if (start + count * SECTOR <= log.length) return log.subarray(start, start + count * SECTOR);
    const head = log.subarray(start);
    return Buffer.concat([head, log.subarray(0, count * SECTOR - head.length)]);
  };
  let crcBudget = MAX_CRC_BYTES;

  const entryAt = (sector: number, previous: bigint | undefined): Entry | undefined => {
    const h = log.subarray(sector * SECTOR, sector * SECTOR + 64);
    if (h.subarray(0, 4).toString('latin1') !== 'loge') return undefined;
    const length = h.readUInt32LE(8);
    const sequence = h.readBigUInt64LE(16);
    const descriptors = h.readUInt32LE(24);
    if (length === 0 || length % SECTOR !== 0 || length > logLength || sequence === 0n) return undefined;
    if (previous !== undefined && sequence !== previous + 1n) return undefined;
    if (guidText(h.subarray(32, 48)) !== header.logGuid) return undefined;
    const descSectors = Math.ceil((descriptors + 2) / 128);
    if (descSectors > length / SECTOR) return undefined;
    const bytes = sectors(sector, length / SECTOR);
    let dataSectors = 0;
    for (let i = 0; i < descriptors; i++) {
      const d = bytes.subarray(64 + i * 32, 96 + i * 32);
      if (d.readBigUInt64LE(24) !== sequence || d.readBigUInt64LE(16) % BigInt(SECTOR) !== 0n) return undefined;
      const sig = d.subarray(0, 4).toString('latin1');
      if (sig === 'desc') dataSectors++;
      else if (sig !== 'zero' || d.readBigUInt64LE(8) % BigInt(SECTOR) !== 0n) return undefined;
    }
    if (descSectors + dataSectors > length / SECTOR) return undefined;
    crcBudget -= length;
    if (crcBudget < 0) throw new StrataError(Errno.EOPNOTSUPP, `VHDX ${label}: VHDX log needs replay, but searching it would take more than ${MAX_CRC_BYTES} bytes of checksums`);
    const copy = Buffer.from(bytes);
    copy.writeUInt32LE(0, 4);
    if (crc32c(copy) !== h.readUInt32LE(4)) return undefined;
    return { at: sector, length, sequence, flushedFileOffset: u64(h, 48), lastFileOffset: u64(h, 56), descriptors };
  };

  // Every sector may start a sequence; the highest-numbered one wins.
  let best: Entry[] | undefined;
  for (let s = 0; s < sectorCount; s++) {
    const first = entryAt(s, undefined);
    if (!first) continue;
    const run = [first];
    for (let next = (s + first.length / SECTOR) % sectorCount; run.length <= sectorCount; ) {
      const e = entryAt(next, run[run.length - 1].sequence);
      if (!e) break;
      run.push(e);
      next = (next + e.length / SECTOR) % sectorCount;
    }
    if (!best || run[run.length - 1].sequence > best[best.length - 1].sequence) best = run;
  }
  if (!best) return undefined;

  const overlay = new Map<number, Buffer | null>();
  let size = file.size;
  let zeroed = 0;
  for (const e of best) {
    if (e.flushedFileOffset > file.size) {
      throw corrupt(label, `the log says the file was at least ${e.flushedFileOffset} bytes, but it is ${file.size}: it was truncated`);
    }
    const bytes = sectors(e.at, e.length / SECTOR);
    let data = Math.ceil((e.descriptors + 2) / 128);
    for (let i = 0; i < e.descriptors; i++) {
      const d = bytes.subarray(64 + i * 32, 96 + i * 32);
      const target = u64(d, 16);
      if (!Number.isSafeInteger(target + SECTOR)) throw corrupt(label, `log entry ${e.sequence} writes at file offset ${target}`);
      if (d.subarray(0, 4).toString('latin1') === 'zero') {
        const count = u64(d, 8) / SECTOR;
        zeroed += count;
        if (zeroed > MAX_ZERO_SECTORS) throw new StrataError(Errno.EOPNOTSUPP, `VHDX ${label}: VHDX log needs replay and zeroes more than ${MAX_ZERO_SECTORS} sectors`);
        for (let k = 0; k < count; k++) overlay.set(target / SECTOR + k, null);
        size = Math.max(size, target + count * SECTOR);
        continue;
      }
      const sector = bytes.subarray(data * SECTOR, (data + 1) * SECTOR);
      data++;
      if (sector.subarray(0, 4).toString('latin1') !== 'data') throw corrupt(label, `log entry ${e.sequence}: data sector ${i} has no "data" signature`);
      const seq = (BigInt(sector.readUInt32LE(4)) << 32n) | BigInt(sector.readUInt32LE(4092));
      if (seq !== e.sequence) throw corrupt(label, `log entry ${e.sequence}: data sector ${i} has sequence number ${seq}`);
      const out = Buffer.alloc(SECTOR);
      d.copy(out, 0, 8, 16);
      sector.copy(out, 8, 8, 4092);
      d.copy(out, 4092, 4, 8);
      overlay.set(target / SECTOR, out);
      size = Math.max(size, target + SECTOR);
    }
    if (e.lastFileOffset > size) size = Math.ceil(e.lastFileOffset / MiB) * MiB;
  }
  return new ReplayedFile(file, overlay, size);
}
