import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Errno, StrataError } from '@strata/errors';
import type { Attr } from '@strata/protocol';
import type { WalkEntry, WalkError } from '@strata/traversal';
import { INDEX_VERSION, IndexBuilder, IndexRejected, parseIndex } from './index-format';
import { findPath, walkIndex } from './index-walk';

const KEY = 'strata:m1:chain-under-test';

function attr(mode: number, i: number): Attr {
  return {
    ino: 2 ** 40 + i,
    mode,
    nlink: 1 + (i % 3),
    uid: i % 70000,
    gid: 5,
    rdev: 0,
    size: i * 977,
    blocks: i,
    blksize: 4096,
    atimeSec: i % 7 === 0 ? -86400 - i : 1_700_000_000 + i,
    atimeNsec: (i * 7919) % 1e9,
    mtimeSec: 1_600_000_000,
    mtimeNsec: 250_000_000,
    ctimeSec: 2 ** 40,
    ctimeNsec: 999_999_999,
  };
}

/** A full walk of "/" as walkTree yields it: depth first, siblings sorted bytewise; dirs, files, links, a damaged entry. */
function generatedWalk(seed: number, dirs = 20, perDir = 30): (WalkEntry | WalkError)[] {
  let s = seed;
  const rnd = (n: number): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % n;
  };
  const out: (WalkEntry | WalkError)[] = [{ path: Buffer.from('/'), attr: attr(0o40755, 0) }];
  let i = 1;
  const walkDir = (prefix: string, depth: number): void => {
    const names = new Set<string>();
    const n = depth > 3 ? 0 : 1 + rnd(depth === 0 ? dirs : perDir);
    while (names.size < n) names.add(`n${rnd(1000)}${rnd(3) === 0 ? '\u00ff' : ''}`);
    for (const name of [...names].map((x) => Buffer.from(x, 'latin1')).sort(Buffer.compare)) {
      const p = Buffer.concat([Buffer.from(prefix, 'latin1'), Buffer.from('/'), name]);
      const kind = rnd(10);
      if (kind < 3 && depth < 3) {
        out.push({ path: p, attr: attr(0o40755, i++) });
        walkDir(p.toString('latin1'), depth + 1);
      } else if (kind === 3) {
        out.push({ path: p, attr: attr(0o120777, i++), linkTarget: Buffer.from(`../target-${i}`) });
      } else if (kind === 4 && rnd(4) === 0) {
        out.push({ path: p, error: new StrataError(Errno.EUCLEAN, `inode ${i++} is damaged`, { path: p }) });
      } else {
        out.push({ path: p, attr: attr(0o100644, i++) });
      }
    }
  };
  walkDir('', 0);
  return out;
}

function build(entries: (WalkEntry | WalkError)[], maxBytes?: number): Buffer {
  const b = new IndexBuilder(KEY, maxBytes);
  for (const e of entries) b.add(e);
  return b.finish();
}

function flat(batches: Iterable<(WalkEntry | WalkError)[]>): (WalkEntry | WalkError)[] {
  return [...batches].flat();
}

/** Entries compared as the wire would: errors by errno, code, message and path. */
function comparable(e: WalkEntry | WalkError): unknown {
  return 'error' in e ? { path: e.path, errno: e.error.errno, code: e.error.code, message: e.error.message, epath: e.error.path } : e;
}

test('an index round trips: a walk of "/" from it is the walk it was built from', () => {
  for (const seed of [1, 2, 3, 42]) {
    const entries = generatedWalk(seed);
    const idx = parseIndex(build(entries), KEY);
    assert.equal(idx.count, entries.length);
    assert.deepEqual(flat(walkIndex(idx, 0, Buffer.from('/'), 0, true)).map(comparable), entries.map(comparable));
    // Without link targets, the same entries with none.
    const noLinks = flat(walkIndex(idx, 0, Buffer.from('/'), 0, false));
    assert.ok(noLinks.every((e) => !('linkTarget' in e)));
    assert.equal(noLinks.length, entries.length);
  }
});

test('a subtree or depth-limited walk from the index is the matching part of the full walk', () => {
  const entries = generatedWalk(7, 40, 40);
  const idx = parseIndex(build(entries), KEY);
  const paths = entries.map((e) => e.path.toString('latin1'));
  let checked = 0;
  for (let k = 0; k < entries.length; k += 7) {
    const e = entries[k];
    if ('error' in e) continue;
    const root = e.path;
    const parts = root.length === 1 ? [] : root.subarray(1).toString('latin1').split('/').map((x) => Buffer.from(x, 'latin1'));
    const pos = findPath(idx, parts);
    assert.equal(pos, k, `found ${root.toString('latin1')}`);
    for (const maxDepth of [0, 1, 2]) {
      const rootDepth = parts.length;
      const prefix = root.length === 1 ? '/' : `${root.toString('latin1')}/`;
      const want = entries.filter((_e, j) => {
        const p = paths[j];
        if (j === k) return true;
        if (!p.startsWith(prefix) || j < k) return false;
        const depth = p.split('/').length - 1 - rootDepth;
        return maxDepth === 0 || depth <= maxDepth;
      });
      assert.deepEqual(flat(walkIndex(idx, pos!, root, maxDepth, true)).map(comparable), want.map(comparable));
      checked++;
    }
  }
  assert.ok(checked > 30);
  assert.equal(findPath(idx, [Buffer.from('no-such-name')]), undefined);
});

test('batches close as walkTree closes them: after an entry with attributes at 512, never after a damaged one', () => {
  const entries: (WalkEntry | WalkError)[] = [{ path: Buffer.from('/'), attr: attr(0o40755, 0) }];
  for (let i = 0; i < 1300; i++) {
    const p = Buffer.from(`/f${String(i).padStart(5, '0')}`);
    entries.push(i === 510 || i === 511 ? { path: p, error: new StrataError(Errno.EUCLEAN, 'bad', { path: p }) } : { path: p, attr: attr(0o100644, i + 1) });
  }
  const idx = parseIndex(build(entries), KEY);
  const sizes = [...walkIndex(idx, 0, Buffer.from('/'), 0, true)].map((b) => b.length);
  // Root + 510 entries = 511, 2 damaged make 513 without closing it: it closes after the next entry, at 514.
  assert.deepEqual(sizes, [514, 512, 1301 - 514 - 512]);
});

test('the builder refuses what a full walk cannot be: out of order, a failed listing, a link without target, too big', () => {
  const root: WalkEntry = { path: Buffer.from('/'), attr: attr(0o40755, 0) };
  const file = (p: string, i = 1): WalkEntry => ({ path: Buffer.from(p), attr: attr(0o100644, i) });
  const refuses = (entries: (WalkEntry | WalkError)[], re: RegExp, maxBytes?: number): void =>
    assert.throws(() => build(entries, maxBytes), (err: unknown) => err instanceof StrataError && err.errno === Errno.EINVAL && re.test(err.message));
  refuses([file('/a')], /root/);
  refuses([root, file('/b'), file('/a')], /order/);
  refuses([root, file('/a'), file('/a')], /order/);
  refuses([root, { path: Buffer.from('/d'), attr: attr(0o40755, 2) }, { path: Buffer.from('/d'), error: StrataError.io('listing failed') }], /listing/);
  refuses([root, { path: Buffer.from('/l'), attr: attr(0o120777, 3) }], /target/);
  refuses([root, file('/x/y')], /outside/);
  refuses(generatedWalk(5), /exceed/, 4096);
});

function withChecksum(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  createHash('sha256').update(out.subarray(0, out.length - 32)).digest().copy(out, out.length - 32);
  return out;
}

function rejects(buf: Buffer, reason: string, key = KEY, maxBytes?: number): void {
  assert.throws(() => parseIndex(buf, key, maxBytes), (err: unknown) => err instanceof IndexRejected && err.reason === reason);
}

test('a truncated, corrupt, foreign, other-version or oversized index is rejected, each for its reason', () => {
  const good = build(generatedWalk(11));
  parseIndex(good, KEY);
  for (let n = 0; n < good.length; n += Math.max(1, Math.floor(good.length / 300))) {
    assert.throws(() => parseIndex(good.subarray(0, n), KEY), IndexRejected, `truncated to ${n}`);
  }
  const flipped = Buffer.from(good);
  flipped[Math.floor(good.length / 2)] ^= 0x40;
  rejects(flipped, 'checksum');
  rejects(good, 'foreign', 'strata:m1:another-chain');
  rejects(Buffer.concat([Buffer.from('NOTANIDX'), good.subarray(8)]), 'foreign');
  const v2 = Buffer.from(good);
  v2.writeUInt32LE(INDEX_VERSION + 1, 8);
  rejects(withChecksum(v2), 'version');
  rejects(good, 'too-big', KEY, good.length - 1);
  const lying = Buffer.from(good);
  lying.writeUInt32LE(2 ** 31, 20);
  rejects(withChecksum(lying), 'corrupt');
});

test('hostile bodies with a valid checksum: parsed or rejected, and a parsed one walks without error', () => {
  const good = build(generatedWalk(13));
  const bodyStart = 32 + Buffer.byteLength(KEY);
  let s = 99;
  const rnd = (n: number): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % n;
  };
  let parsed = 0;
  for (let iter = 0; iter < 2000; iter++) {
    const m = Buffer.from(good);
    for (let k = 0, n = 1 + rnd(4); k < n; k++) m[bodyStart + rnd(m.length - 32 - bodyStart)] = rnd(256);
    const hostile = withChecksum(m);
    let idx;
    try {
      idx = parseIndex(hostile, KEY);
    } catch (err) {
      assert.ok(err instanceof IndexRejected, String(err));
      continue;
    }
    parsed++;
    const all = flat(walkIndex(idx, 0, Buffer.from('/'), 0, true));
    assert.equal(all.length, idx.count);
  }
  assert.ok(parsed > 0 && parsed < 2000, `parsed ${parsed} of 2000`);
});
