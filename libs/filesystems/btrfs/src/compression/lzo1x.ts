/**
 * LZO1X decompression (the format of the kernel's lzo1x_1_compress), with
 * every input and output position checked: hostile input yields an error,
 * never an out-of-range access. `out` is filled up to its length.
 */
export class LzoError extends Error {}

const M2_MAX_OFFSET = 0x0800;

export function lzo1xDecompress(src: Uint8Array, out: Uint8Array): number {
  let ip = 0;
  let op = 0;
  const inEnd = src.length;
  const outEnd = out.length;

  const byte = (): number => {
    if (ip >= inEnd) throw new LzoError('lzo: input overrun');
    return src[ip++];
  };
  const literals = (n: number): void => {
    if (ip + n > inEnd) throw new LzoError('lzo: input overrun');
    if (op + n > outEnd) throw new LzoError('lzo: output overrun');
    out.set(src.subarray(ip, ip + n), op);
    ip += n;
    op += n;
  };
  const copyMatch = (pos: number, n: number): void => {
    if (pos < 0) throw new LzoError('lzo: lookbehind overrun');
    if (op + n > outEnd) throw new LzoError('lzo: output overrun');
    // Byte by byte: a match may overlap the bytes it produces.
    for (let i = 0; i < n; i++) out[op++] = out[pos++];
  };
  const runLength = (t: number, base: number): number => {
    if (t !== 0) return t;
    let n = 0;
    for (;;) {
      const b = byte();
      if (b !== 0) return n + base + b;
      n += 255;
      if (n > 0x7fffffff) throw new LzoError('lzo: run length overflow');
    }
  };

  let t = byte();
  // `state` replaces the gotos of the reference decoder.
  let state: 'loop' | 'firstLiteralRun' | 'match' | 'matchNext';
  if (t > 17) {
    t -= 17;
    if (t < 4) {
      state = 'matchNext';
    } else {
      literals(t);
      state = 'firstLiteralRun';
    }
  } else {
    ip = 0;
    state = 'loop';
  }

  for (let guard = 0; ; guard++) {
    if (guard > 0x4000_0000) throw new LzoError('lzo: runaway stream');
    if (state === 'loop') {
      t = byte();
      if (t >= 16) {
        state = 'match';
        continue;
      }
      t = runLength(t, 15);
      literals(t + 3);
      state = 'firstLiteralRun';
      continue;
    }
    if (state === 'firstLiteralRun') {
      t = byte();
      if (t >= 16) {
        state = 'match';
        continue;
      }
      const pos = op - (1 + M2_MAX_OFFSET) - (t >> 2) - (byte() << 2);
      copyMatch(pos, 3);
    } else if (state === 'matchNext') {
      literals(t);
      t = byte();
      state = 'match';
      continue;
    } else {
      // state === 'match'
      if (t >= 64) {
        const pos = op - 1 - ((t >> 2) & 7) - (byte() << 3);
        copyMatch(pos, (t >> 5) - 1 + 2);
      } else if (t >= 32) {
        const len = runLength(t & 31, 31);
        const lo = byte();
        const hi = byte();
        const pos = op - 1 - (((hi << 8) | lo) >> 2);
        copyMatch(pos, len + 2);
      } else if (t >= 16) {
        let pos = op - ((t & 8) << 11);
        const len = runLength(t & 7, 7);
        const lo = byte();
        const hi = byte();
        pos -= ((hi << 8) | lo) >> 2;
        if (pos === op) {
          if (ip !== inEnd) throw new LzoError('lzo: input not consumed');
          return op;
        }
        pos -= 0x4000;
        copyMatch(pos, len + 2);
      } else {
        const pos = op - 1 - (t >> 2) - (byte() << 2);
        copyMatch(pos, 2);
      }
    }
    // match_done: the low two bits of the byte before the last decide the literals that follow.
    t = src[ip - 2] & 3;
    if (t === 0) {
      state = 'loop';
    } else {
      state = 'matchNext';
    }
  }
}
