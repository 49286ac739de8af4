import { read } from 'node:fs';
import type { promises as fs } from 'node:fs';

/**
 * Up to `length` bytes at `offset`, looping over short reads; fewer only at
 * end of file.
 */
export async function readAt(handle: fs.FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

function readOnce(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** readAt on a plain descriptor (the callback API: cheaper per call than a FileHandle's). */
export async function readFdAt(fd: number, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = await readOnce(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** Up to `length` bytes at `offset` into `into` (from its start), looping over short reads: the count, fewer only at end of file. */
export async function readFdInto(fd: number, into: Buffer, offset: number, length: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await readOnce(fd, into, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
