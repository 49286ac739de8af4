import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { canMountFuse, forceUnmount, startAgent, startResolver, strata, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { compareTrees, readEngineListing, readEngineTree, readKernelTree, type Field, type Tree } from '../support/tree-snapshot';
import { fsyncAll, makeGptDisk, mkfs, run, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * Disk images of running VMs. The guest is the kernel's ext4 mounted
 * read-write on a loop device over an image in the store (or over
 * qemu-storage-daemon's writable FUSE export of a qcow2 snapshot, a guest
 * writing through qemu). strata reads the image as a LIVE layer while the
 * guest is still mounted: after each `sync` of the guest, the API and a
 * mount show the guest's tree within one second. Copies of the image taken
 * while the guest runs need journal recovery; strata reads them as the
 * kernel does after replaying onto a scratch copy.
 */

/** Every field the guest's own mount shows (atime moves as the test reads; st_blocks of a file being written is the allocator's business until sync). */
const FIELDS: Field[] = ['mode', 'uid', 'gid', 'size', 'blocks', 'nlink', 'rdev', 'mtimeNs', 'ino', 'xattrs', 'link', 'content'];
const BUDGET_MS = 1000;

let work: string;
let store: string;
let resolver: ResolverProcess;
let client: StrataClient;

function cli(args: string[]): string {
  const r = strata(args, { STRATA_RESOLVER: resolver.address });
  assert.equal(r.status, 0, `strata ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** What a guest does between two syncs: every kind of namespace and data change. */
const STEPS: [string, (m: string) => void][] = [
  [
    'create',
    (m) => {
      fs.mkdirSync(path.join(m, 'app/logs'), { recursive: true });
      for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(m, 'app', `f${i}`), `content ${i}\n`.repeat(i + 1));
    },
  ],
  [
    'append and hard link',
    (m) => {
      fs.appendFileSync(path.join(m, 'app/f1'), 'more\n'.repeat(5000));
      fs.linkSync(path.join(m, 'app/f2'), path.join(m, 'app/logs/f2-link'));
    },
  ],
  [
    'rename and unlink',
    (m) => {
      fs.renameSync(path.join(m, 'app/f3'), path.join(m, 'app/logs/f3-moved'));
      for (let i = 10; i < 20; i++) fs.unlinkSync(path.join(m, 'app', `f${i}`));
    },
  ],
  [
    'mkdir deep and a large file',
    (m) => {
      fs.mkdirSync(path.join(m, 'data/a/b/c'), { recursive: true });
      fs.writeFileSync(path.join(m, 'data/a/b/c/big'), Buffer.alloc(3 << 20, 0x42));
      fs.symlinkSync('../../app/f1', path.join(m, 'data/a/f1-link'));
    },
  ],
  [
    'attributes and removal of a tree',
    (m) => {
      fs.chmodSync(path.join(m, 'app/f4'), 0o600);
      run('setfattr', ['-n', 'user.state', '-v', 'running', path.join(m, 'app/f5')]);
      fs.rmSync(path.join(m, 'app/logs'), { recursive: true });
    },
  ],
];

/** A guest with its filesystem mounted read-write on a loop device over `file`; detach() unmounts. */
class Guest {
  readonly mnt: string;
  private readonly dev: string;

  constructor(file: string, w: PartitionWindow) {
    this.mnt = fs.mkdtempSync(path.join(work, 'guest-'));
    this.dev = run('losetup', ['-o', String(w.start), '--sizelimit', String(w.size), '-f', '--show', file]).trim();
    try {
      // A long commit interval: committed metadata stays in the journal for a while, as on a busy guest.
      run('mount', ['-o', 'rw,noatime,commit=300', this.dev, this.mnt]);
    } catch (err) {
      run('losetup', ['-d', this.dev]);
      throw err;
    }
  }

  /** What a guest's fsync does: data on disk, metadata committed to the journal (not yet written in place). */
  sync(): void {
    fsyncAll(this.mnt);
  }

  tree(): Tree {
    return readKernelTree(this.mnt);
  }

  detach(): void {
    try {
      run('umount', [this.mnt]);
    } finally {
      run('losetup', ['-d', this.dev]);
    }
  }
}

/** Fields a listing carries (no content): cheap enough to poll every few milliseconds. */
const LISTING_FIELDS: Field[] = FIELDS.filter((f) => f !== 'content' && f !== 'xattrs' && f !== 'link');

/**
 * How long until strata shows the guest's tree: `listing` (metadata only,
 * one walk) is polled until it matches, which times when the change became
 * visible without the time of a full read blurring it; then `full` (every
 * field, content included) must match too. `t0`: when the guest's sync
 * returned (reading the guest's own tree takes a while too).
 */
async function converge(expected: Tree, listing: () => Promise<Tree> | Tree, full: () => Promise<Tree> | Tree, t0 = performance.now()): Promise<{ ms: number; diffs: string[] }> {
  let diffs: string[] = ['never read'];
  let ms = Infinity;
  while (performance.now() - t0 < BUDGET_MS * 3) {
    const startedAt = performance.now() - t0;
    try {
      diffs = compareTrees(expected, await listing(), LISTING_FIELDS);
    } catch (err) {
      // The tree moved between the walk and a read of one of its entries (a reopen in between): read it again.
      diffs = [`read failed: ${err instanceof Error ? err.message : String(err)}`];
    }
    if (diffs.length === 0) {
      ms = startedAt;
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  if (diffs.length > 0) return { ms, diffs };
  // Everything else, content included, must be there as well (a few tries: a reopen may land between two reads).
  for (let i = 0; i < 5; i++) {
    try {
      diffs = compareTrees(expected, await full(), FIELDS);
    } catch (err) {
      diffs = [`read failed: ${err instanceof Error ? err.message : String(err)}`];
    }
    if (diffs.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ms, diffs };
}

/** Runs every step in the guest; after each sync the API must show the guest's tree within the budget. */
async function followGuest(g: Guest, layer: string, label: string): Promise<void> {
  const times: number[] = [];
  const api = apiTreeSource(client, { name: layer });
  for (const [name, step] of STEPS) {
    step(g.mnt);
    g.sync();
    const synced = performance.now();
    const { ms, diffs } = await converge(g.tree(), () => readEngineListing(api), () => readEngineTree(api), synced);
    assert.deepEqual(diffs, [], `step "${name}": the API still differs from the guest after ${BUDGET_MS * 3} ms`);
    assert.ok(ms <= BUDGET_MS, `step "${name}": converged after ${Math.round(ms)} ms`);
    times.push(Math.round(ms));
  }
  console.log(`# LIVE ${label}: converged after ${times.join(', ')} ms`);
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-live-img-'));
  store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'vm'), { recursive: true });
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address });
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('a LIVE raw: layer over the disk of a running guest', () => {
  let disk: PartitionWindow;
  let guest: Guest | undefined;
  let agent: AgentProcess | undefined;
  let mnt: string | undefined;
  const file = (): string => path.join(store, 'vm/live.raw');

  before(() => {
    disk = makeGptDisk(file(), 96);
    mkfs(file(), disk, ['-t', 'ext4', '-b', '4096']);
    guest = new Guest(file(), disk);
    cli(['layer', 'create', '--source', 'raw:vm/live.raw#2', '--option', 'live', '--name', 'live-raw']);
  });

  after(async () => {
    if (mnt) forceUnmount(mnt);
    await agent?.stop();
    guest?.detach();
  });

  test('after each sync of the guest, the API shows its tree within one second', async () => {
    await followGuest(guest!, 'live-raw', 'raw');
  });

  test('a mount of the LIVE layer follows the guest within one second', { skip: !canMountFuse() }, async () => {
    const g = guest!;
    agent = await startAgent({ resolver: resolver.address });
    mnt = fs.mkdtempSync(path.join(work, 'mnt-'));
    agent.mount('live-raw', mnt);
    await waitFor('the LIVE mount', () => fs.existsSync(path.join(mnt!, 'app')) || undefined, 5000);
    fs.writeFileSync(path.join(g.mnt, 'app/through-mount'), 'seen\n');
    fs.unlinkSync(path.join(g.mnt, 'app/f0'));
    g.sync();
    const synced = performance.now();
    // Every field as the kernel recovers it: times in ns, st_ino in full.
    const { ms, diffs } = await converge(g.tree(), () => readKernelTree(mnt!, false), () => readKernelTree(mnt!), synced);
    assert.deepEqual(diffs, []);
    assert.ok(ms <= BUDGET_MS, `the mount converged after ${Math.round(ms)} ms`);
  });

  test('copies taken while the guest writes need recovery and read as the kernel recovers them', async () => {
    const g = guest!;
    // A writer that keeps going (fsync now and then, so transactions commit) while copies are taken.
    const writer: ChildProcess = spawn(
      'sh',
      ['-c', `i=0; while true; do i=$((i+1)); echo "line $i" >> "$1/app/journal.log"; mkdir -p "$1/w/$((i % 7))"; echo $i > "$1/w/$((i % 7))/n$i"; [ $((i % 5)) = 0 ] && rm -f "$1/w/$((i % 7))/n$((i - 4))"; [ $((i % 10)) = 0 ] && sync "$1/app/journal.log" "$1/w/$((i % 7))"; done`, 'writer', g.mnt],
      { stdio: 'ignore' },
    );
    try {
      for (let copy = 0; copy < 3; copy++) {
        await new Promise((r) => setTimeout(r, 300));
        // The guest stops between two system calls: what has reached the disk is a crash-consistent image.
        writer.kill('SIGSTOP');
        const name = `copy${copy}.raw`;
        try {
          fs.copyFileSync(file(), path.join(store, 'vm', name));
        } finally {
          writer.kill('SIGCONT');
        }
        const scratch = path.join(work, `${name}.scratch`);
        fs.copyFileSync(path.join(store, 'vm', name), scratch);
        const expected = await withLoopMount(scratch, disk, 'rw-replay', (m) => readKernelTree(m));
        fs.rmSync(scratch);
        cli(['layer', 'create', '--source', `raw:vm/${name}#2`, '--name', `copy${copy}`]);
        const actual = await readEngineTree(apiTreeSource(client, { name: `copy${copy}` }));
        assert.ok(expected.size > 10, `copy ${copy} has ${expected.size} paths`);
        assert.deepEqual(compareTrees(expected, actual, FIELDS), [], `copy ${copy}`);
      }
    } finally {
      writer.kill('SIGKILL');
      await new Promise((r) => writer.once('exit', r));
    }
    g.sync();
  });
});

describe('a LIVE qcow2: snapshot written through qemu-storage-daemon', () => {
  let disk: PartitionWindow;
  let qsd: ChildProcess | undefined;
  let guest: Guest | undefined;
  const exportFile = (): string => path.join(work, 'qsd-export');

  before(async () => {
    const raw = path.join(work, 'base.raw');
    disk = makeGptDisk(raw, 96);
    mkfs(raw, disk, ['-t', 'ext4', '-b', '4096']);
    await withLoopMount(raw, disk, 'rw', (m) => {
      fs.mkdirSync(path.join(m, 'etc'));
      fs.writeFileSync(path.join(m, 'etc/hostname'), 'vm\n');
      for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(m, `base-${i}`), `base ${i}\n`);
    });
    const vm = path.join(store, 'vm');
    run('qemu-img', ['convert', '-O', 'qcow2', raw, 'qbase.qcow2'], vm);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'qbase.qcow2', '-F', 'qcow2', 'qlive.qcow2'], vm);
    fs.writeFileSync(exportFile(), '');
    qsd = spawn(
      'qemu-storage-daemon',
      [
        '--blockdev', `driver=file,node-name=file,filename=${path.join(vm, 'qlive.qcow2')}`,
        '--blockdev', 'driver=qcow2,node-name=disk,file=file',
        '--export', `type=fuse,id=exp,node-name=disk,mountpoint=${exportFile()},writable=on`,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    await waitFor('the qemu-storage-daemon export', () => fs.statSync(exportFile()).size > 0 || undefined, 10_000);
    guest = new Guest(exportFile(), disk);
    cli(['layer', 'create', '--source', 'qcow2:vm/qbase.qcow2#2', '--name', 'qbase']);
    cli(['layer', 'create', '--source', 'qcow2:vm/qlive.qcow2#2', '--type', 'snapshot', '--base', 'qbase', '--option', 'live', '--name', 'qlive']);
  });

  after(async () => {
    guest?.detach();
    if (qsd && qsd.exitCode === null) {
      qsd.kill('SIGTERM');
      await new Promise((r) => qsd!.once('exit', r));
    }
  });

  test('after each sync of the guest, the API shows its tree within one second', async () => {
    await followGuest(guest!, 'qlive', 'qcow2');
    // The base stays sealed and unchanged underneath.
    const base = await readEngineTree(apiTreeSource(client, { name: 'qbase' }));
    assert.ok(base.has('/base-0') && !base.has('/app'));
  });
});

describe('a LIVE image whose block is torn by a write while strata reads it', () => {
  test('the read is retried on a fresh look at the image, never answered from the torn block', async () => {
    const src = path.join(work, 'torn-src');
    fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(src, 'etc/hostname'), 'torn\n');
    const img = path.join(store, 'vm/torn.img');
    run('mke2fs', ['-q', '-t', 'ext4', '-b', '4096', '-d', src, img, '16M']);
    const where = /located at block (\d+), offset (0x[0-9a-f]+)/.exec(run('debugfs', ['-R', 'imap /etc/hostname', img]));
    assert.ok(where, 'debugfs found the inode');
    const at = Number(where[1]) * 4096 + Number(where[2]);
    cli(['layer', 'create', '--source', 'raw:vm/torn.img', '--option', 'live', '--name', 'torn']);
    assert.equal((await client.stat({ name: 'torn' }, '/etc/hostname')).size, 5);
    // Past every LIVE cache lifetime between the API and the image: the next stat reads the inode again.
    await new Promise((r) => setTimeout(r, 600));
    // Half of the inode rewritten (its checksum no longer matches), as a guest's write in flight leaves it...
    const fd = fs.openSync(img, 'r+');
    const good = Buffer.alloc(128);
    fs.readSync(fd, good, 0, 128, at);
    fs.writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, at + 8);
    // ...and finished a moment later.
    const finish = setTimeout(() => {
      fs.writeSync(fd, good, 0, 128, at);
      fs.closeSync(fd);
    }, 120);
    try {
      const st = await client.stat({ name: 'torn' }, '/etc/hostname');
      assert.equal(st.size, 5);
    } finally {
      await new Promise((r) => setTimeout(r, 150));
      clearTimeout(finish);
    }
    const data: Buffer[] = [];
    for await (const chunk of client.read({ name: 'torn' }, '/etc/hostname', 0, 100)) data.push(chunk);
    assert.equal(Buffer.concat(data).toString(), 'torn\n');
  });
});
