import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { Errno, isStrataError } from '@strata/errors';
import { canMountFuse, forceUnmount, startAgent, startResolver, strata, type ResolverProcess } from '@strata/harness';
import { canLoopMount, debugfsWrite, inodeOf, makeImage } from './damaged-support';

/**
 * A damaged disk through the API and the CLI: ReadDir lists the damaged
 * entry without attributes and with its error, its Stat fails with the
 * kernel's errno, Walk and `strata walk`/`diff` go past it, report it in
 * its place and exit non-zero at the end.
 */

const skip = canLoopMount() ? false : 'needs root, mke2fs and debugfs';

let work: string;
let store: string;
let resolver: ResolverProcess;
let client: StrataClient;

function cli(args: string[]): ReturnType<typeof strata> {
  return strata(args, { STRATA_RESOLVER: resolver.address });
}

describe('damaged disks through the API and the CLI', { skip }, () => {
  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-damaged-walk-'));
    store = path.join(work, 'store');
    fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
    const good = path.join(store, 'vm/good.img');
    makeImage(good);
    const bad = path.join(store, 'vm/bad.img');
    fs.copyFileSync(good, bad);
    // Two unreadable entries: a deleted inode in /d and a subdirectory's whole inode in /sub.
    debugfsWrite(bad, `clri <${inodeOf(bad, '/d/two')}>`, `clri <${inodeOf(bad, '/sub/deep')}>`);
    resolver = await startResolver({ store });
    client = new StrataClient({ resolver: resolver.address, deadlineMs: 10_000 });
    assert.equal(cli(['layer', 'create', '--source', 'raw:vm/good.img', '--name', 'good']).status, 0);
    const created = cli(['layer', 'create', '--source', 'raw:vm/bad.img', '--name', 'bad']);
    assert.equal(created.status, 0, created.stderr);
  });

  after(async () => {
    client?.close();
    await resolver?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('ReadDir lists the damaged entry with its error; Stat of it fails with EUCLEAN', async () => {
    const entries = await client.readDir({ name: 'bad' }, '/d');
    assert.deepEqual(entries.map((e) => e.name.toString()).sort(), ['one', 'three', 'two']);
    const two = entries.find((e) => e.name.toString() === 'two');
    assert.equal(two?.attr, undefined);
    assert.equal(two?.error?.errno, Errno.EUCLEAN);
    assert.ok(entries.find((e) => e.name.toString() === 'one')?.attr);
    await assert.rejects(client.stat({ name: 'bad' }, '/d/two'), (e: unknown) => isStrataError(e) && e.errno === Errno.EUCLEAN);
    assert.equal((await client.stat({ name: 'bad' }, '/d/one')).size, 40);
  });

  test('strata walk goes on past unreadable paths, reports each in its place and exits 1', () => {
    const r = cli(['walk', 'bad', '/', '--no-progress']);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const bad = lines.filter((l) => l.startsWith('??????????'));
    assert.equal(bad.length, 2, `${r.stdout.split('\n').filter((l) => !l.includes('/big/')).join('\n')}\n${r.stderr}`);
    assert.match(bad.join('\n'), /\/d\/two {2}\[EUCLEAN: /);
    assert.match(bad.join('\n'), /\/sub\/deep {2}\[EUCLEAN: /);
    // Everything else is there, in walk order: the entries after the damaged ones too.
    for (const p of ['/d/three', '/big/n299', '/link']) assert.ok(lines.some((l) => l.endsWith(` ${p}`) || l.includes(` ${p} -> `)), `${p} missing`);
    assert.ok(lines.findIndex((l) => l.endsWith(' /d/three')) < lines.findIndex((l) => l.includes('/d/two')));
    assert.ok(lines.findIndex((l) => l.includes('/d/two')) < lines.findIndex((l) => l.includes(' /link -> ')));
    assert.match(r.stderr, /2 paths could not be read \(first: \/d\/two: EUCLEAN\)/);
    const good = cli(['walk', 'good', '/', '--no-progress']);
    assert.equal(good.status, 0, good.stderr);
    assert.equal(good.stdout.trim().split('\n').length, lines.length + 1, 'the damaged disk lists every path but /sub/deep/x');
  });

  test('strata walk --json: one object a line, an error object for each unreadable path', () => {
    const r = cli(['--json', 'walk', 'bad', '/', '--no-progress']);
    assert.equal(r.status, 1, r.stderr);
    const objects = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { path: string; attr: unknown; error?: { errno: string; errnoNumber: number } });
    const errors = objects.filter((o) => o.error);
    assert.deepEqual(
      errors.map((o) => [o.path, o.error?.errno, o.attr]),
      [
        ['/d/two', 'EUCLEAN', null],
        ['/sub/deep', 'EUCLEAN', null],
      ],
    );
    assert.ok(objects.some((o) => o.path === '/big/n0'));
    assert.equal(JSON.parse(r.stderr.trim().split('\n').pop() ?? '{}').error?.errno, 'EUCLEAN');
  });

  test('the API Walk streams the error entries', async () => {
    const seen: { path: string; errno?: number }[] = [];
    for await (const batch of client.walk({ name: 'bad' }, '/')) for (const e of batch) seen.push({ path: e.path.toString(), errno: e.error?.errno });
    assert.deepEqual(
      seen.filter((e) => e.errno !== undefined),
      [
        { path: '/d/two', errno: Errno.EUCLEAN },
        { path: '/sub/deep', errno: Errno.EUCLEAN },
      ],
    );
    assert.ok(seen.some((e) => e.path === '/sub'));
  });

  test('strata diff goes past unreadable paths and exits 1', () => {
    const r = cli(['diff', 'good', 'bad', '--no-progress']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /could not be read/);
    assert.match(r.stdout, /^M \/d\/two/m);
    assert.match(r.stdout, /^M \/sub\/deep/m);
  });

  test('through a mount: ls lists the damaged entries (as the kernel does), stat of one fails with EUCLEAN, the rest reads', { skip: canMountFuse() ? false : 'needs root and /dev/fuse' }, async () => {
    const agent = await startAgent({ resolver: resolver.address });
    try {
      const mnt = fs.mkdtempSync(path.join(work, 'mnt-'));
      try {
        agent.mount('bad', mnt);
        const names = fs.readdirSync(path.join(mnt, 'd'));
        assert.ok(names.includes('two'), names.join());
        const err = (() => {
          try {
            fs.lstatSync(path.join(mnt, 'd/two'));
            return undefined;
          } catch (e) {
            return e as NodeJS.ErrnoException;
          }
        })();
        // Node has no name for EUCLEAN: the number is what the kernel handed back.
        assert.equal(err?.errno, -Errno.EUCLEAN, String(err));
        for (const n of names.filter((x) => x !== 'two')) fs.lstatSync(path.join(mnt, 'd', n));
      } finally {
        forceUnmount(mnt);
      }
      // A slow symlink of size 0 reads as "" through the mount, as the kernel's ext4 reads it (was EIO).
      const linkImage = path.join(store, 'vm/empty-link.img');
      makeImage(linkImage);
      debugfsWrite(linkImage, `symlink /slow ${'t'.repeat(80)}`, 'sif /slow size 0');
      assert.equal(cli(['layer', 'create', '--source', 'raw:vm/empty-link.img', '--name', 'empty-link']).status, 0);
      const lmnt = fs.mkdtempSync(path.join(work, 'mnt-'));
      try {
        agent.mount('empty-link', lmnt);
        assert.equal(fs.readlinkSync(path.join(lmnt, 'slow')), '');
      } finally {
        forceUnmount(lmnt);
      }
    } finally {
      await agent.stop();
    }
  });

  test('strata layer check --deep lists every damaged object with its errno, without stopping, and exits 1', () => {
    const r = cli(['layer', 'check', 'bad', '--deep', '--json']);
    assert.equal(r.status, 1, r.stderr);
    const out = JSON.parse(r.stdout) as { ok: boolean; layers: { deep: { damaged: { path: string; what: string; error: { errno: number } }[]; damagedCount: number; objectsChecked: number } }[] };
    const deep = out.layers[0].deep;
    assert.deepEqual(deep.damaged.map((d) => d.path).sort(), ['/d/two', '/sub/deep']);
    assert.ok(deep.damaged.every((d) => d.error.errno === Errno.EUCLEAN), JSON.stringify(deep.damaged));
    assert.equal(deep.damagedCount, 2);
    assert.ok(deep.objectsChecked > 5);
    const text = cli(['layer', 'check', 'bad', '--deep']);
    assert.match(text.stdout, /damaged {2}\/d\/two.*EUCLEAN/);
    const clean = cli(['layer', 'check', 'good', '--deep']);
    assert.equal(clean.status, 0, clean.stderr);
    assert.match(clean.stdout, /deep: \d+ objects read, 0 damaged/);
  });
});
