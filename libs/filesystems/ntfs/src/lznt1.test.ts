/**
 * LZNT1 on streams built by hand from the format description (chunk
 * headers, tag bytes, position-dependent offset/length split) and on
 * streams from a small compressor written here for the purpose. Real
 * ntfs-3g-compressed files are compared in test/filesystems/ntfs.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, isStrataError } from '@strata/errors';
import { LZNT1_CHUNK, decompressLznt1 } from './lznt1';

function chunk(body: number[], compressed = true): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16LE((compressed ? 0xb000 : 0x3000) | (body.length + 2 - 3), 0);
  return Buffer.concat([h, Buffer.from(body)]);
}

const bytes = (s: string): number[] => [...Buffer.from(s, 'latin1')];

/** Split of a back-reference token at output position `pos` in the chunk: offset bits grow as the chunk fills. */
function split(pos: number): number {
  let lg = 0;
  for (let i = pos - 1; i >= 0x10; i >>= 1) lg++;
  return 12 - lg;
}

/** A greedy LZNT1 compressor of one unit (test vectors only). */
function compress(data: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let c = 0; c < data.length; c += LZNT1_CHUNK) {
    const src = data.subarray(c, c + LZNT1_CHUNK);
    const body: number[] = [];
    let pos = 0;
    while (pos < src.length) {
      const tagAt = body.length;
      body.push(0);
      for (let t = 0; t < 8 && pos < src.length; t++) {
        const bits = split(pos);
        const maxOffset = 2 ** (16 - bits);
        const maxLength = (0xffff >> (16 - bits)) + 3;
        let best = 0;
        let bestOff = 0;
        for (let off = 1; off <= Math.min(pos, maxOffset); off++) {
          let n = 0;
          while (n < maxLength && pos + n < src.length && src[pos + n] === src[pos + n - off]) n++;
          if (n > best) {
            best = n;
            bestOff = off;
          }
        }
        if (best >= 3) {
          body[tagAt] |= 1 << t;
          const token = ((bestOff - 1) << bits) | (best - 3);
          body.push(token & 0xff, token >> 8);
          pos += best;
        } else body.push(src[pos++]);
      }
    }
    out.push(chunk(body));
  }
  return Buffer.concat([...out, Buffer.alloc(2)]);
}

test('literals, then a back reference that overlaps what it copies', () => {
  const out = decompressLznt1(chunk([0x08, ...bytes('abc'), 0x03, 0x20]), LZNT1_CHUNK);
  assert.equal(out.subarray(0, 9).toString('latin1'), 'abcabcabc');
  assert.ok(out.subarray(9).every((b) => b === 0), 'a short chunk is padded with zeros');
  const run = decompressLznt1(chunk([0x02, 0x61, 0x0a, 0x00]), LZNT1_CHUNK);
  assert.equal(run.subarray(0, 14).toString('latin1'), 'a'.repeat(14));
});

test('an uncompressed chunk is copied; a zero header ends the unit and the rest is zeros', () => {
  const raw = Buffer.alloc(LZNT1_CHUNK, 0x41);
  const h = Buffer.alloc(2);
  h.writeUInt16LE(0x3000 | (LZNT1_CHUNK - 1), 0);
  const out = decompressLznt1(Buffer.concat([h, raw, chunk([0x00, ...bytes('xy')]), Buffer.alloc(2), chunk([0x00, ...bytes('zz')])]), 4 * LZNT1_CHUNK);
  assert.ok(out.subarray(0, LZNT1_CHUNK).equals(raw));
  assert.equal(out.subarray(LZNT1_CHUNK, LZNT1_CHUNK + 2).toString('latin1'), 'xy');
  assert.ok(out.subarray(LZNT1_CHUNK + 2).every((b) => b === 0), 'nothing after the zero header');
});

test('the offset/length split moves with the position in the chunk (12/4 bits up to 16, 4/12 near the end)', () => {
  assert.equal(split(1), 12);
  assert.equal(split(16), 12);
  assert.equal(split(17), 11);
  assert.equal(split(2048), 5);
  assert.equal(split(2049), 4);
  for (const seed of [1, 2, 3]) {
    const parts: Buffer[] = [];
    let x = seed;
    for (let i = 0; i < 400; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const word = Buffer.from(['alpha', 'beta', 'gamma', 'delta', 'epsilon'][x % 5].repeat(1 + (x % 7)));
      parts.push(x % 3 === 0 ? Buffer.from([x & 0xff, (x >> 8) & 0xff]) : word);
    }
    const data = Buffer.concat(parts).subarray(0, 16 * 1024);
    const packed = compress(data);
    assert.ok(packed.length < data.length, 'the vector really is compressed');
    const out = decompressLznt1(packed, 16 * 1024);
    assert.ok(out.subarray(0, data.length).equals(data));
  }
});

test('damage is EUCLEAN, never a read outside the buffers', () => {
  const bad = (buf: Buffer, why: RegExp): void => {
    assert.throws(() => decompressLznt1(buf, LZNT1_CHUNK), (e: unknown) => isStrataError(e) && e.errno === Errno.EUCLEAN && why.test(e.message));
  };
  bad(chunk([0x01, 0x00, 0x00, 0x00]), /start of a chunk/);
  bad(chunk([0x02, 0x61, 0x00, 0x10]), /before the chunk/);
  bad(chunk([0x02, 0x61, 0xff, 0x0f]), /past the chunk/);
  bad(chunk([0x02, 0x61, 0x05]), /truncated/);
  bad(Buffer.from([0xff, 0xbf, 0x00, 0x61, 0x62, 0x63]), /longer than the unit/);
  assert.throws(
    () => decompressLznt1(Buffer.concat([chunk([0x00, 0x61]), chunk([0x00, 0x61]), Buffer.alloc(8)]), 6000),
    (e: unknown) => isStrataError(e) && /past the end of the unit/.test(e.message),
  );
  const h = Buffer.alloc(2);
  h.writeUInt16LE(0x3000 | 100, 0);
  bad(Buffer.concat([h, Buffer.alloc(101)]), /short uncompressed chunk/);
  for (let seed = 0; seed < 2000; seed++) {
    const junk = Buffer.alloc(64);
    let x = seed + 1;
    for (let i = 0; i < junk.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      junk[i] = x >>> 24;
    }
    try {
      decompressLznt1(junk, 2 * LZNT1_CHUNK);
    } catch (e) {
      assert.ok(isStrataError(e) && e.errno === Errno.EUCLEAN, String(e));
    }
  }
});
