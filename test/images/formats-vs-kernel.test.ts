import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, strata, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { ALL_FIELDS, compareTrees, readEngineTree, readKernelTree } from '../support/tree-snapshot';
import { mkfs, run, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * The other image and filesystem shapes a hypervisor host has, each read
 * through the resolver and compared with the kernel's read-only mount:
 * ext2 block maps in a logical partition of an MBR disk (raw:), ext4 inline
 * data in a compressed qcow2, and an htree directory in a qcow2 with
 * extended L2 entries (subclusters).
 */

let work: string;
let store: string;
let resolver: ResolverProcess;
let client: StrataClient;

function cli(args: string[]): void {
  const r = strata(args, { STRATA_RESOLVER: resolver.address });
  assert.equal(r.status, 0, `strata ${args.join(' ')}: ${r.stderr}`);
}

function sparseFile(file: string, mib: number): void {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, mib << 20);
}

/** A few of everything, written by the kernel as a guest would. */
function fillCommon(m: string): void {
  fs.mkdirSync(path.join(m, 'etc'));
  fs.writeFileSync(path.join(m, 'etc/small'), 'tiny\n');
  fs.writeFileSync(path.join(m, 'etc/medium'), Buffer.alloc(70_000, 0x41));
  fs.symlinkSync('small', path.join(m, 'etc/fast-link'));
  fs.symlinkSync(`/${'x'.repeat(100)}/target`, path.join(m, 'etc/slow-link'));
  run('setfattr', ['-n', 'user.note', '-v', 'kept', path.join(m, 'etc/small')]);
  run('touch', ['-h', '-d', '2200-03-04 05:06:07.891011121', path.join(m, 'etc/medium')]);
}

async function compare(disk: string, w: PartitionWindow, layer: string): Promise<void> {
  const expected = await withLoopMount(disk, w, 'ro', (m) => readKernelTree(m));
  const actual = await readEngineTree(apiTreeSource(client, { name: layer }));
  assert.ok(expected.size >= 8, `only ${expected.size} entries`);
  assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS), []);
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-formats-'));
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

describe('image and filesystem variants against the kernel', () => {
  test('ext2 with 1 KiB blocks (indirect block maps) in logical partition #5 of an MBR disk, raw', async () => {
    const disk = path.join(store, 'vm/mbr.img');
    sparseFile(disk, 96);
    execFileSync('sfdisk', ['-q', disk], { input: 'label: dos\nsize=8MiB, type=83\ntype=5\nsize=40MiB, type=83\ntype=83\n' });
    const parts = (JSON.parse(run('sfdisk', ['-J', disk])) as { partitiontable: { partitions: { node: string; start: number; size: number }[] } }).partitiontable.partitions;
    const logical = parts.find((p) => p.node.endsWith('5'));
    assert.ok(logical, JSON.stringify(parts));
    const w = { start: logical.start * 512, size: logical.size * 512 };
    mkfs(disk, w, ['-t', 'ext2', '-b', '1024', '-I', '128']);
    await withLoopMount(disk, w, 'rw', (m) => {
      fillCommon(m);
      // Past the 12 direct blocks, the single and the double indirect block of a 1 KiB-block file.
      const fd = fs.openSync(path.join(m, 'etc/indirect'), 'w');
      for (const off of [0, 20 << 10, 300 << 10, 9 << 20]) fs.writeSync(fd, `block at ${off}`, off);
      fs.closeSync(fd);
    });
    cli(['layer', 'create', '--source', 'raw:vm/mbr.img#5', '--name', 'ext2-logical']);
    await compare(disk, w, 'ext2-logical');
  });

  test('ext4 inline data (files and directories in the inode) as a whole-disk filesystem in a compressed qcow2', async () => {
    const raw = path.join(work, 'inline.raw');
    sparseFile(raw, 32);
    const w = { start: 0, size: 32 << 20 };
    mkfs(raw, w, ['-t', 'ext4', '-O', 'inline_data']);
    await withLoopMount(raw, w, 'rw', (m) => {
      fillCommon(m);
      fs.mkdirSync(path.join(m, 'inline-dir'));
      for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(m, 'inline-dir', `n${i}`), `${i}`);
    });
    run('qemu-img', ['convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=4096', raw, path.join(store, 'vm/inline.qcow2')]);
    cli(['layer', 'create', '--source', 'qcow2:vm/inline.qcow2', '--name', 'inline']);
    await compare(raw, w, 'inline');
  });

  test('an htree directory of 5,000 names in a qcow2 with extended L2 entries (subclusters)', async () => {
    const raw = path.join(work, 'htree.raw');
    sparseFile(raw, 64);
    const w = { start: 0, size: 64 << 20 };
    mkfs(raw, w, ['-t', 'ext4', '-b', '4096']);
    await withLoopMount(raw, w, 'rw', (m) => {
      fillCommon(m);
      fs.mkdirSync(path.join(m, 'many'));
      for (let i = 0; i < 5000; i++) fs.writeFileSync(path.join(m, 'many', `entry-with-a-longer-name-${i}`), '');
    });
    run('qemu-img', ['convert', '-O', 'qcow2', '-o', 'extended_l2=on,cluster_size=128k', raw, path.join(store, 'vm/htree.qcow2')]);
    cli(['layer', 'create', '--source', 'qcow2:vm/htree.qcow2', '--name', 'htree']);
    await compare(raw, w, 'htree');
    // The directory really is hashed (the kernel indexed it), so lookups went through the htree.
    const flags = /Flags: 0x([0-9a-f]+)/.exec(run('debugfs', ['-R', 'stat /many', raw]));
    assert.ok(flags && (parseInt(flags[1], 16) & 0x1000) !== 0, 'EXT4_INDEX_FL set on /many');
  });
});
