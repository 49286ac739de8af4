import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FuseSession } from '@strata/fuse-kernel';
import type { DirEntry } from '@strata/protocol';
import { nativePrefetchSink } from './native-prefetch';
import { NodeTable } from './node-table';
import { NodeJournal } from './node-journal';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ATTR = { ino: 7, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 3 << 20, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };

test('a prefetched directory goes to the native cache, then its listing to `listed` (large files handed over ahead)', () => {
  const nodes = new NodeTable();
  const order: string[] = [];
  const cached = new Map<bigint, string[]>();
  const session = {
    cacheAttr: () => order.push('attr'),
    cacheListing: (ino: bigint, l: { entries: { name: Buffer; ino: bigint }[] }) => {
      order.push('listing');
      cached.set(ino, l.entries.map((e) => `${e.name.toString()}=${e.ino}`));
    },
    cacheLink: () => undefined,
  } as unknown as FuseSession;
  const told: [string, string[]][] = [];
  const sink = nativePrefetchSink(session, nodes, (dir, entries: readonly DirEntry[]) => {
    order.push('listed');
    told.push([dir, entries.map((e) => e.name.toString())]);
  });
  const entries: DirEntry[] = [
    { name: Buffer.from('big.img'), attr: ATTR },
    { name: Buffer.from('small'), attr: { ...ATTR, ino: 8, size: 10 } },
  ];
  sink.directory('/srv', { dir: { ...ATTR, ino: 5, mode: 0o40755 }, entries }, 1);
  assert.deepEqual(order, [], 'held until the flush');
  sink.flush?.();
  assert.deepEqual(order, ['attr', 'listing', 'listed']);
  assert.deepEqual(told, [['/srv', ['big.img', 'small']]]);
  // The inos the listing names are the table's: a hand-over ahead of one registers the ino the kernel will be given.
  assert.deepEqual(cached.get(nodes.inoOf('/srv')), [`big.img=${nodes.inoOf('/srv/big.img')}`, `small=${nodes.inoOf('/srv/small')}`]);
  // Without `listed` (no store view), directories are cached the same.
  const plain = nativePrefetchSink(session, new NodeTable());
  plain.directory('/x', { dir: { ...ATTR, ino: 9, mode: 0o40755 }, entries }, 1);
  plain.flush?.();
  assert.equal(told.length, 1);
});

test('directories and links held to a flush get their inos on file in one journal write, before the session has them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'native-prefetch-'));
  try {
    const nodes = new NodeTable();
    const journal = NodeJournal.create(path.join(dir, 'nodes'), 2n, []);
    nodes.journalTo(journal);
    const seen: string[] = [];
    const onFile = (ino: bigint): boolean => NodeJournal.read(journal.file).nodes.has(ino);
    const session = {
      cacheAttr: () => undefined,
      cacheListing: (ino: bigint, l: { entries: { ino: bigint }[] }) => seen.push(`listing ${onFile(ino) && l.entries.every((e) => onFile(e.ino))}`),
      cacheLink: (ino: bigint, target: Buffer) => seen.push(`link ${target.toString()} ${onFile(ino)}`),
    } as unknown as FuseSession;
    const sink = nativePrefetchSink(session, nodes);
    sink.link('/d/l', Buffer.from('target'));
    sink.directory('/d', { dir: { ...ATTR, ino: 5, mode: 0o40755 }, entries: [{ name: Buffer.from('l'), attr: { ...ATTR, mode: 0o120777 } }] }, 1);
    sink.directory('/e', { dir: { ...ATTR, ino: 6, mode: 0o40755 }, entries: [{ name: Buffer.from('f'), attr: ATTR }] }, 1);
    assert.deepEqual(seen, []);
    sink.flush?.();
    assert.deepEqual(seen, ['listing true', 'listing true', 'link target true']);
    assert.equal(journal.stats.writes, 1);
    journal.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
