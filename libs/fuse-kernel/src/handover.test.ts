import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isStrataError } from '@strata/errors';
import { handoverOptions, parseHandover } from './handover';
import type { SessionHandover } from './types';

const valid: SessionHandover = {
  format: 'strata-fuse-handover',
  version: 1,
  mountpoint: '/run/strata/mnt/a',
  connection: 48,
  device: { major: 0, minor: 48 },
  negotiated: { minor: 41, flags: (2n ** 37n + 0x1234n).toString(), maxWrite: 1 << 20, maxPages: 256, passthrough: true, generation: 3 },
  options: handoverOptions({ rootIno: 1n, keepCache: true, entryTimeout: Infinity, requestTimeoutMs: 30_000 }),
};

describe('handover state', () => {
  it('round-trips through JSON (Infinity timeouts become a number the native side reads as forever)', () => {
    const back = parseHandover(JSON.parse(JSON.stringify(valid)));
    assert.deepEqual(back, valid);
    assert.equal(back.options.entryTimeout, 1e12);
    assert.equal(back.options.rootIno, '1');
  });

  it('refuses another format or version whole, naming it', () => {
    for (const [state, pattern] of [
      [{ ...valid, version: 2 }, /version 2 is not strata-fuse-handover version 1/],
      [{ ...valid, format: 'x' }, /format "x"/],
      [{ ...valid, version: '1' }, /version 1 is not/],
      [[], /must be an object/],
      ['state', /must be an object/],
    ] as const) {
      assert.throws(() => parseHandover(state), (err: unknown) => isStrataError(err) && err.errno === 22 && pattern.test(err.message));
    }
  });

  it('hostile states: every mutation parses or throws EINVAL, nothing else', () => {
    const text = JSON.stringify(valid);
    const values: unknown[] = [null, -1, 1.5, 2 ** 64, 'x'.repeat(5000), '', {}, [], true, '18446744073709551616', '-0', NaN];
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let refused = 0;
    for (let round = 0; round < 3000; round++) {
      let state: unknown;
      if (round % 3 === 0) {
        // Byte damage to the JSON text; what still parses as JSON is offered.
        const b = Buffer.from(text);
        for (let k = 0; k < 1 + rand(4); k++) b[rand(b.length)] = randomBytes(1)[0] as number;
        try {
          state = JSON.parse(b.toString('latin1'));
        } catch {
          continue;
        }
      } else {
        // A field replaced or removed at any depth.
        const copy = JSON.parse(text) as Record<string, Record<string, unknown>>;
        const top = Object.keys(copy)[rand(Object.keys(copy).length)] as string;
        const inner = copy[top];
        if (typeof inner === 'object' && inner !== null && rand(2) === 0) {
          const key = Object.keys(inner)[rand(Object.keys(inner).length)] as string;
          if (rand(4) === 0) delete inner[key];
          else inner[key] = values[rand(values.length)];
        } else if (rand(4) === 0) {
          delete (copy as Record<string, unknown>)[top];
        } else {
          (copy as Record<string, unknown>)[top] = values[rand(values.length)];
        }
        state = copy;
      }
      try {
        const parsed = parseHandover(state);
        assert.equal(parsed.format, 'strata-fuse-handover');
        assert.ok(BigInt(parsed.negotiated.flags) < 2n ** 64n);
        assert.ok(parsed.negotiated.maxPages >= 1 && parsed.negotiated.maxPages <= 256);
      } catch (err) {
        assert.ok(isStrataError(err) && err.errno === 22, `not EINVAL: ${String(err)}`);
        refused++;
      }
    }
    assert.ok(refused > 1000, `${refused} refused`);
  });
});
