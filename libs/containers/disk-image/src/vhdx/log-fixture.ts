// Helpers for tests: VHDX log entries laid out as MS-VHDX 2.3 describes them.
import { crc32c } from '../crc32c';

const SECTOR = 4096;

export interface LogWrite {
  kind: 'desc' | 'zero';
  fileOffset: number;
  /** desc: the 4 KiB written; zero: how many bytes. */
  data?: Buffer;
  zeroLength?: number;
}

/** One log entry: header and descriptors in the first sector(s), then a data sector per write. */
export function logEntry(sequence: bigint, guid: Buffer, writes: LogWrite[], flushed: number, last: number, tail: number): Buffer {
  const descSectors = Math.ceil((writes.length + 2) / 128);
  const dataCount = writes.filter((w) => w.kind === 'desc').length;
  const entry = Buffer.alloc((descSectors + dataCount) * SECTOR);
  entry.write('loge', 0, 'latin1');
  entry.writeUInt32LE(entry.length, 8);
  entry.writeUInt32LE(tail, 12);
  entry.writeBigUInt64LE(sequence, 16);
  entry.writeUInt32LE(writes.length, 24);
  guid.copy(entry, 32);
  entry.writeBigUInt64LE(BigInt(flushed), 48);
  entry.writeBigUInt64LE(BigInt(last), 56);
  let data = descSectors;
  writes.forEach((w, i) => {
    const d = entry.subarray(64 + i * 32, 96 + i * 32);
    d.write(w.kind, 0, 'latin1');
    d.writeBigUInt64LE(BigInt(w.fileOffset), 16);
    d.writeBigUInt64LE(sequence, 24);
    if (w.kind === 'zero') {
      d.writeBigUInt64LE(BigInt(w.zeroLength ?? 0), 8);
      return;
    }
    const bytes = w.data ?? Buffer.alloc(SECTOR);
    bytes.copy(d, 8, 0, 8);
    bytes.copy(d, 4, 4092, 4096);
    const s = entry.subarray(data * SECTOR, (data + 1) * SECTOR);
    s.write('data', 0, 'latin1');
    s.writeUInt32LE(Number(sequence >> 32n), 4);
    bytes.copy(s, 8, 8, 4092);
    s.writeUInt32LE(Number(sequence & 0xffffffffn), 4092);
    data++;
  });
  entry.writeUInt32LE(crc32c(entry), 4);
  return entry;
}

export function setLogGuid(b: Buffer, guid: Buffer): void {
  for (const h of [64 * 1024, 128 * 1024]) {
    guid.copy(b, h + 48);
    b.writeUInt32LE(0, h + 4);
    b.writeUInt32LE(crc32c(b.subarray(h, h + 4096)), h + 4);
  }
}

export function batOffset(b: Buffer): number {
  const rt = 192 * 1024;
  for (let i = 0; i < b.readUInt32LE(rt + 8); i++) {
    const e = rt + 16 + i * 32;
    if (b.subarray(e, e + 4).toString('hex') === '6677c22d') return Number(b.readBigUInt64LE(e + 16));
  }
  throw new Error('no BAT region');
}
