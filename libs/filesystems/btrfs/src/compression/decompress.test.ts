import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { isStrataError } from '@strata/errors';
import { lzo1xDecompress, LzoError } from './lzo1x';
import { btrfsLzoDecompress } from './btrfs-lzo';
import { decompressExtent } from './decompress';
import { zstdFrameInfo } from './zstd-frame';
import { Compression } from '../constants';

const hello = Buffer.from('hello');
/** Five literals, an M2 match of 5 bytes at distance 5, and the end marker (M4 at distance 0). */
const HELLO_TWICE = Buffer.from([17 + 5, ...hello, 0x90, 0x00, 0x11, 0x00, 0x00]);

test('lzo1x: literals, an overlapping-capable match, the end marker', () => {
  const out = new Uint8Array(16);
  const n = lzo1xDecompress(HELLO_TWICE, out);
  assert.equal(Buffer.from(out.subarray(0, n)).toString(), 'hellohello');
});

test('lzo1x: a match running over its own output repeats the pattern', () => {
  // Two literals "ab", M2 of 8 bytes at distance 2 ((t>>5)-1+2 = 8 → t>>5 = 7; distance-1 = 1 → (t>>2)&7 = 1).
  const stream = Buffer.from([17 + 4, 0x61, 0x62, 0x61, 0x62, (7 << 5) | (1 << 2), 0x00, 0x11, 0x00, 0x00]);
  const out = new Uint8Array(32);
  const n = lzo1xDecompress(stream, out);
  assert.equal(Buffer.from(out.subarray(0, n)).toString(), 'abab' + 'abababab');
});

test('lzo1x: truncated, overrunning and lookbehind-violating streams fail with LzoError', () => {
  assert.throws(() => lzo1xDecompress(HELLO_TWICE.subarray(0, 8), new Uint8Array(16)), LzoError);
  assert.throws(() => lzo1xDecompress(HELLO_TWICE, new Uint8Array(7)), LzoError);
  assert.throws(() => lzo1xDecompress(Buffer.from([17 + 4, 1, 2, 3, 4, 0xff, 0xff, 0x11, 0, 0]), new Uint8Array(64)), LzoError);
});

test('lzo1x: random input never throws anything but LzoError and never writes past the output', () => {
  let x = 12345;
  for (let round = 0; round < 3000; round++) {
    const len = 1 + (round % 300);
    const src = Buffer.alloc(len);
    for (let i = 0; i < len; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      src[i] = x >>> 24;
    }
    const out = new Uint8Array(4096);
    try {
      const n = lzo1xDecompress(src, out);
      assert.ok(n <= out.length);
    } catch (err) {
      assert.ok(err instanceof LzoError, String(err));
    }
  }
});

test('btrfs lzo framing: total length, per-segment lengths, no segment header across a sector', () => {
  // Sector size 16 keeps the example small: segment 1 ends 2 bytes before the boundary, so segment 2's header starts at 16.
  const seg = (text: string): Buffer => Buffer.from([17 + text.length, ...Buffer.from(text), 0x11, 0x00, 0x00]);
  const s1 = seg('hi');
  const s2 = seg('there');
  const framed = Buffer.alloc(16 + 4 + s2.length);
  framed.writeUInt32LE(framed.length, 0);
  framed.writeUInt32LE(s1.length, 4);
  s1.copy(framed, 8);
  framed.writeUInt32LE(s2.length, 16);
  s2.copy(framed, 20);
  assert.equal(btrfsLzoDecompress(framed, 7, 16).toString(), 'hithere');
  assert.equal(btrfsLzoDecompress(framed, 4, 16).toString(), 'hith');
  assert.throws(() => btrfsLzoDecompress(Buffer.from([1, 0, 0, 0]), 10, 16), LzoError);
  const bad = Buffer.from(framed);
  bad.writeUInt32LE(1 << 20, 4);
  assert.throws(() => btrfsLzoDecompress(bad, 10, 16), LzoError);
});

test('zlib: a zlib stream with btrfs sector padding, and a corrupt one as EIO', () => {
  const data = Buffer.from('abc'.repeat(5000));
  const z = Buffer.concat([deflateSync(data), Buffer.alloc(300)]);
  assert.deepEqual(decompressExtent(Compression.ZLIB, z, data.length, 4096), data);
  const bad = Buffer.from(z);
  bad.fill(0xff, 10, 40);
  assert.throws(() => decompressExtent(Compression.ZLIB, bad, data.length, 4096), (e: unknown) => isStrataError(e) && e.errno === 5);
});

test('zstd: the real tool\'s frame followed by zero padding; the frame length parser; a corrupt frame as EIO', { skip: hasZstd() ? undefined : 'zstd not installed' }, () => {
  const data = Buffer.from('The quick brown fox. '.repeat(6000)).subarray(0, 128 * 1024);
  const frame = execFileSync('zstd', ['-q', '-c', '--no-check', '-3', '--zstd=wlog=17'], { input: data, timeout: 10_000 });
  const info = zstdFrameInfo(Buffer.concat([frame, Buffer.alloc(100)]));
  assert.equal(info?.length, frame.length);
  const padded = Buffer.concat([frame, Buffer.alloc(4096 - (frame.length % 4096))]);
  assert.deepEqual(decompressExtent(Compression.ZSTD, padded, data.length, 4096), data);
  assert.equal(zstdFrameInfo(Buffer.alloc(100)), undefined);
  const bad = Buffer.from(padded);
  bad.fill(0x5a, 12, frame.length - 4);
  assert.throws(() => decompressExtent(Compression.ZSTD, bad, data.length, 4096), (e: unknown) => isStrataError(e));
});

function hasZstd(): boolean {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

test('mutated zlib, zstd and lzo extents: the result or a StrataError, never anything else', { skip: hasZstd() ? undefined : 'zstd not installed' }, () => {
  const data = Buffer.from('fuzzing the decompressors with real frames. '.repeat(3000)).subarray(0, 128 * 1024);
  const zstdFrame = execFileSync('zstd', ['-q', '-c', '-3', '--zstd=wlog=17'], { input: data, timeout: 10_000 });
  const zlibStream = deflateSync(data);
  const lzoSegments = Buffer.concat([Buffer.from([0, 0, 0, 0]), Buffer.from([HELLO_TWICE.length, 0, 0, 0]), HELLO_TWICE]);
  lzoSegments.writeUInt32LE(lzoSegments.length, 0);
  let x = 99;
  const next = (n: number): number => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x % n;
  };
  for (const [compression, original] of [
    [Compression.ZSTD, zstdFrame],
    [Compression.ZLIB, zlibStream],
    [Compression.LZO, lzoSegments],
  ] as const) {
    for (let round = 0; round < 150; round++) {
      const b = Buffer.from(original);
      for (let i = 0, n = 1 + next(4); i < n; i++) b[next(b.length)] = next(256);
      const cut = round % 5 === 0 ? b.subarray(0, next(b.length)) : b;
      try {
        const out = decompressExtent(compression, cut, data.length, 4096);
        assert.ok(out.length <= data.length);
      } catch (err) {
        assert.ok(isStrataError(err), `${compression} round ${round}: ${String(err)}`);
      }
    }
  }
});
