import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { cliOf } from '../support/cli-runner';
import { compareTrees, readEngineTree, readKernelTree, type Field, type Tree } from '../support/tree-snapshot';
import { attachLoop, canLoopMount, fsyncAll, makeGptDisk, run, type PartitionWindow } from './disk-fixture';

/**
 * The disk of a running VM whose root is XFS: the guest is the kernel's xfs
 * mounted read-write on a loop device over a raw image in the store. After
 * each fsync of the guest (metadata in the XFS log, not yet in place), the
 * LIVE layer shows the guest's tree — strata replays the log in memory — within
 * a bounded time.
 */

const FIELDS: Field[] = ['mode', 'uid', 'gid', 'size', 'nlink', 'rdev', 'mtimeNs', 'ino', 'xattrs', 'link', 'content'];
const BUDGET_MS = 3000;
const canRun = canLoopMount('mkfs.xfs', 'sfdisk');
const SMALL_XFS = { ...process.env, TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' };

let work: string;
let store: string;
let part: PartitionWindow;
let dev = '';
let mnt = '';
let resolver: ResolverProcess;
let client: StrataClient;

const cli = cliOf(() => resolver);

const STEPS: [string, (m: string) => void][] = [
  [
    'create files and directories',
    (m) => {
      fs.mkdirSync(path.join(m, 'app/logs'), { recursive: true });
      for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(m, 'app', `f${i}`), `content ${i}\n`.repeat(i + 1));
    },
  ],
  [
    'append, link, rename, unlink',
    (m) => {
      fs.appendFileSync(path.join(m, 'app/f1'), 'more\n'.repeat(5000));
      fs.linkSync(path.join(m, 'app/f2'), path.join(m, 'app/logs/f2-link'));
      fs.renameSync(path.join(m, 'app/f3'), path.join(m, 'app/logs/f3-moved'));
      for (let i = 10; i < 20; i++) fs.unlinkSync(path.join(m, 'app', `f${i}`));
    },
  ],
  [
    'attributes and removal of a tree',
    (m) => {
      fs.chmodSync(path.join(m, 'app/f4'), 0o600);
      run('setfattr', ['-n', 'user.state', '-v', 'running', path.join(m, 'app/f5')]);
      fs.rmSync(path.join(m, 'app/logs'), { recursive: true });
      fs.writeFileSync(path.join(m, 'big'), Buffer.alloc(2 << 20, 0x42));
    },
  ],
];

before(async () => {
  if (!canRun) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-live-xfs-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  const image = path.join(store, 'vm/running.raw');
  part = makeGptDisk(image, 320);
  dev = attachLoop(image, part);
  execFileSync('mkfs.xfs', ['-q', '-f', dev], { env: SMALL_XFS, stdio: 'ignore' });
  mnt = fs.mkdtempSync(path.join(work, 'guest-'));
  run('mount', ['-o', 'rw,noatime', dev, mnt]);
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address });
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (mnt) run('umount', [mnt]);
  if (dev) run('losetup', ['-d', dev]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('a LIVE layer over the XFS disk of a running VM', { skip: canRun ? false : 'needs root, loop devices and xfsprogs' }, () => {
  test('after each fsync of the guest the layer shows its tree within a bound, the XFS log replayed in memory', async () => {
    cli(['layer', 'create', '--source', 'raw:vm/running.raw', '--option', 'live', '--name', 'running']);
    for (const [what, step] of STEPS) {
      step(mnt);
      fsyncAll(mnt);
      const expected: Tree = readKernelTree(mnt);
      const t0 = performance.now();
      let diffs: string[] = ['never read'];
      while (performance.now() - t0 < BUDGET_MS) {
        try {
          diffs = compareTrees(expected, await readEngineTree(apiTreeSource(client, { name: 'running' })), FIELDS);
        } catch (err) {
          diffs = [`read failed: ${err instanceof Error ? err.message : String(err)}`];
        }
        if (diffs.length === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(diffs, [], `after "${what}"`);
    }
  });
});
