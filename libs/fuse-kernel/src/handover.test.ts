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

  const withFiles: SessionHandover = {
    ...valid,
    files: {
      opens: [
        { ino: '12', cached: 0, passthrough: 2, backingId: 7 },
        { ino: '13', cached: 1, passthrough: 0, backingId: -1 },
      ],
      backings: [
        { ino: '12', backingId: 9 },
        { ino: '14', backingId: 8 },
      ],
    },
  };

  it('files (how inos are open, passthrough backing ids) round-trip; a state without them stays without', () => {
    assert.deepEqual(parseHandover(JSON.parse(JSON.stringify(withFiles))), withFiles);
    assert.equal('files' in parseHandover(JSON.parse(JSON.stringify(valid))), false);
  });

  it('refuses files that would make the successor answer wrongly: EINVAL, saying why', () => {
    const files = withFiles.files as NonNullable<SessionHandover['files']>;
    const opens = files.opens;
    for (const [f, pattern, negotiated] of [
      [{ ...files, opens: [{ ...opens[0], backingId: -1 }] }, /goes with passthrough opens/],
      [{ ...files, opens: [{ ...opens[1], backingId: 3 }] }, /goes with passthrough opens/],
      [{ ...files, opens: [{ ...opens[0], backingId: 0 }] }, /backingId must be/],
      [{ ...files, opens: [opens[0], opens[0]] }, /twice in files.opens/],
      [{ ...files, backings: [{ ino: '15', backingId: 7 }] }, /backing id 7 is given for ino 12 and ino 15/],
      [{ ...files, backings: [{ ino: '15', backingId: -1 }] }, /backingId must be/],
      [{ ...files, opens: [{ ...opens[0], cached: -1 }] }, /cached must be/],
      [{ ...files, opens: [{ ...opens[0], ino: '1e3' }] }, /ino must be/],
      [{ ...files, opens: 'x' }, /files.opens must be an array/],
      [{ ...files, backings: new Array(2 ** 20 + 1).fill({ ino: '1', backingId: 1 }) }, /at most/],
      [files, /passthrough opens on a connection without passthrough/, false],
      [{ opens: [opens[1]], backings: [{ ino: '14', backingId: 8 }] }, /backing ids on a connection without passthrough/, false],
    ] as const) {
      const state = { ...withFiles, files: f, negotiated: { ...withFiles.negotiated, passthrough: negotiated ?? true } };
      assert.throws(() => parseHandover(JSON.parse(JSON.stringify(state))), (err: unknown) => isStrataError(err) && err.errno === 22 && pattern.test(err.message), String(pattern));
    }
    // Cached opens alone are fine without passthrough.
    const cachedOnly = { ...withFiles, files: { opens: [opens[1]], backings: [] }, negotiated: { ...withFiles.negotiated, passthrough: false } };
    assert.deepEqual(parseHandover(JSON.parse(JSON.stringify(cachedOnly))), cachedOnly);
  });

  it('hostile files: every mutation of an entry parses or throws EINVAL', () => {
    const values: unknown[] = [null, -1, 0, 1.5, 2 ** 31, 2 ** 64, 'x', '', {}, [], true, '18446744073709551616', '007'];
    let seed = 777;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let refused = 0;
    for (let round = 0; round < 2000; round++) {
      const copy = JSON.parse(JSON.stringify(withFiles)) as { files: Record<string, Record<string, unknown>[] | unknown> };
      const list = rand(2) === 0 ? 'opens' : 'backings';
      const entries = copy.files[list] as Record<string, unknown>[];
      const entry = entries[rand(entries.length)] as Record<string, unknown>;
      const key = Object.keys(entry)[rand(Object.keys(entry).length)] as string;
      if (rand(5) === 0) delete entry[key];
      else entry[key] = values[rand(values.length)];
      if (rand(10) === 0) copy.files[list] = values[rand(values.length)];
      try {
        const parsed = parseHandover(copy);
        for (const o of parsed.files?.opens ?? []) assert.ok((o.passthrough > 0) === o.backingId > 0);
      } catch (err) {
        assert.ok(isStrataError(err) && err.errno === 22, `not EINVAL: ${String(err)}`);
        refused++;
      }
    }
    assert.ok(refused > 1000, `${refused} refused`);
  });
});
