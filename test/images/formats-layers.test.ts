import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { apiTreeSource } from '../support/api-tree-source';
import { cliOf } from '../support/cli-runner';
import { referenceDiff } from '../support/reference-diff';
import { ALL_FIELDS, compareTrees, readEngineTree, readKernelTree } from '../support/tree-snapshot';
import { canLoopMount, makeGptDisk, mkfs, run, withLoopMount, type PartitionWindow } from './disk-fixture';

/**
 * Disks of other hypervisors as layers, end to end through the resolver and
 * the CLI: a VMware base with a delta disk (a VMware snapshot), a qcow2
 * snapshot over a Hyper-V VHDX base, VirtualBox VDI and Virtual PC VHD by
 * `image:` detection — each tree against the kernel's loop mount of the
 * disk flattened by qemu-img, diffs against the kernel mounts' changes, and
 * a wrong source kind refused naming the format found.
 */

const canRun = canLoopMount('sfdisk', 'mke2fs', 'qemu-img');

let work: string;
let store: string;
let vm: string;
let disk: PartitionWindow;
let raw: string;
let resolver: ResolverProcess;
let client: StrataClient;

const cli = cliOf(() => resolver);

before(async () => {
  if (!canRun) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-formats-'));
  store = path.join(work, 'store');
  vm = path.join(store, 'vm');
  fs.mkdirSync(vm, { recursive: true });
  raw = path.join(work, 'disk.raw');
  disk = makeGptDisk(raw, 96);
  mkfs(raw, disk, ['-t', 'ext4', '-b', '4096']);
  await withLoopMount(raw, disk, 'rw', (m) => {
    fs.mkdirSync(path.join(m, 'etc'));
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(m, 'etc', `f${i}`), `base ${i}\n`.repeat(i));
    fs.writeFileSync(path.join(m, 'big'), Buffer.alloc(5 << 20, 0x5a));
  });
  run('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=monolithicSparse', raw, 'base.vmdk'], vm);
  run('qemu-img', ['convert', '-O', 'vhdx', '-o', 'subformat=dynamic', raw, 'base.vhdx'], vm);
  run('qemu-img', ['convert', '-O', 'vdi', raw, 'base.vdi'], vm);
  run('qemu-img', ['convert', '-O', 'vpc', '-o', 'subformat=dynamic', raw, 'base.vhd'], vm);
  fs.copyFileSync(raw, path.join(work, 'base.raw'));
  await withLoopMount(raw, disk, 'rw', (m) => {
    for (let i = 0; i < 300; i += 4) fs.unlinkSync(path.join(m, 'etc', `f${i}`));
    fs.writeFileSync(path.join(m, 'etc/f1'), 'changed\n');
    fs.mkdirSync(path.join(m, 'srv'));
    fs.writeFileSync(path.join(m, 'srv/new'), 'new file\n');
  });
  // The guest's changes as a VMware delta disk and as a qcow2 snapshot over the VHDX.
  run('qemu-img', ['convert', '-O', 'vmdk', '-B', 'base.vmdk', '-F', 'vmdk', raw, 'delta.vmdk'], vm);
  run('qemu-img', ['convert', '-O', 'qcow2', '-B', 'base.vhdx', '-F', 'vhdx', raw, 'over-vhdx.qcow2'], vm);
  resolver = await startResolver({ store });
  client = new StrataClient({ resolver: resolver.address });
});

after(async () => {
  client?.close();
  await resolver?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** The kernel's read-only mount of an image flattened by qemu-img. */
async function kernelTreeOf(image: string): Promise<ReturnType<typeof readKernelTree>> {
  const flat = path.join(work, `${path.basename(image)}.flat`);
  run('qemu-img', ['convert', '-O', 'raw', path.join(vm, image), flat]);
  try {
    return await withLoopMount(flat, disk, 'ro', (m) => readKernelTree(m));
  } finally {
    fs.rmSync(flat);
  }
}

describe('VMDK, VHDX, VHD and VDI disks as layers', { skip: canRun ? false : 'needs root and loop devices' }, () => {
  test('a VMware base and its delta disk as snapshot layers, each tree as the kernel reads it; diff as the kernel mounts differ', async () => {
    cli(['layer', 'create', '--source', 'vmdk:vm/base.vmdk', '--name', 'vmw-base']);
    cli(['layer', 'create', '--source', 'vmdk:vm/delta.vmdk', '--base', 'vmw-base', '--name', 'vmw-delta']);
    for (const [layer, image] of [['vmw-base', 'base.vmdk'], ['vmw-delta', 'delta.vmdk']]) {
      assert.deepEqual(compareTrees(await kernelTreeOf(image), await readEngineTree(apiTreeSource(client, { name: layer })), ALL_FIELDS), [], layer);
    }
    const flats = ['base.vmdk', 'delta.vmdk'].map((n) => path.join(work, `${n}.diff`));
    run('qemu-img', ['convert', '-O', 'raw', path.join(vm, 'base.vmdk'), flats[0]]);
    run('qemu-img', ['convert', '-O', 'raw', path.join(vm, 'delta.vmdk'), flats[1]]);
    const expected = await withLoopMount(flats[0], disk, 'ro', (a) => withLoopMount(flats[1], disk, 'ro', (b) => referenceDiff(a, b)));
    for (const f of flats) fs.rmSync(f);
    const out = JSON.parse(cli(['diff', 'vmw-base', 'vmw-delta', '--json']).stdout) as { changes: { path: string; kind: string }[] };
    assert.ok(expected.length > 70);
    assert.deepEqual(out.changes.map((c) => `${c.kind} ${JSON.stringify(c.path)}`), expected);
    const got = JSON.parse(cli(['layer', 'get', 'vmw-delta', '--json']).stdout) as { image: { imageFormat: string } };
    assert.equal(got.image.imageFormat, 'vmdk');
  });

  test('a qcow2 snapshot over a VHDX base', async () => {
    cli(['layer', 'create', '--source', 'vhdx:vm/base.vhdx', '--name', 'hv-base']);
    cli(['layer', 'create', '--source', 'qcow2:vm/over-vhdx.qcow2', '--base', 'hv-base', '--name', 'hv-snap']);
    assert.deepEqual(compareTrees(await kernelTreeOf('over-vhdx.qcow2'), await readEngineTree(apiTreeSource(client, { name: 'hv-snap' })), ALL_FIELDS), []);
    // A snapshot layer must name its image's parent as base, across formats too.
    const wrong = cli(['layer', 'create', '--source', 'qcow2:vm/over-vhdx.qcow2', '--base', 'vmw-base', '--name', 'hv-wrong'], false);
    assert.match(wrong.stderr, /base of an image snapshot is the layer of its backing file/);
  });

  test('image: detects VDI and VHD; layer get names the format found', async () => {
    for (const [name, file, format] of [['vbox', 'base.vdi', 'vdi'], ['vpc', 'base.vhd', 'vhd']]) {
      cli(['layer', 'create', '--source', `image:vm/${file}`, '--name', name]);
      const got = JSON.parse(cli(['layer', 'get', name, '--json']).stdout) as { image: { imageFormat: string; filesystemType: string } };
      assert.deepEqual([got.image.imageFormat, got.image.filesystemType], [format, 'ext4']);
      assert.deepEqual(compareTrees(await kernelTreeOf(file), await readEngineTree(apiTreeSource(client, { name })), ALL_FIELDS), [], name);
    }
  });

  test('a wrong source kind is refused naming the format found', () => {
    const r = cli(['layer', 'create', '--source', 'qcow2:vm/base.vmdk', '--name', 'wrongkind'], false);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /vm\/base\.vmdk is a VMDK image \(monolithicSparse\): use vmdk: or image:/);
  });
});
