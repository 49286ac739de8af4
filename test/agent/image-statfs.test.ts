import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog } from '@strata/layers';
import { canMountFuse, forceUnmount, startAgent, startResolver, strata, type AgentProcess, type ResolverProcess } from '@strata/harness';

/**
 * `df` on a mount of an image layer reports the image's filesystem (its
 * size, free blocks and inodes), as the kernel's own loop mount of the same
 * image does, not the host filesystem the image file sits on. An image
 * damaged under a mount makes the mount degraded, never "serving".
 */

const haveTools = ['mkfs.ext4', 'losetup'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
const skip = !canMountFuse() ? 'needs root and /dev/fuse' : !haveTools ? 'needs mkfs.ext4 and losetup' : false;

let work: string;
let resolver: ResolverProcess | undefined;
let agent: AgentProcess | undefined;
const mnt = (): string => path.join(work, 'mnt');
const loop = (): string => path.join(work, 'loop');

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-image-statfs-'));
  const src = path.join(work, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'hello'), 'hi\n');
  fs.writeFileSync(path.join(src, 'big'), Buffer.alloc(3 << 20, 7));
  fs.mkdirSync(path.join(src, 'd'));
  // Never zeros: mkfs.ext4 -d makes an all-zero file sparse, readable with no data block at all.
  for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(src, 'd', `f${i}`), Buffer.alloc(50_000, i + 1));
  const store = path.join(work, 'store');
  fs.mkdirSync(path.join(store, 'img'), { recursive: true });
  const mk = spawnSync('mkfs.ext4', ['-q', '-F', '-d', src, path.join(store, 'img/fs.ext4'), '64M'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(mk.status, 0, mk.stderr);
  const catalog = new Catalog(store);
  await catalog.init();
  await catalog.create({ source: 'raw:img/fs.ext4', layerType: 'base', name: 'disk' });
  fs.mkdirSync(mnt());
  fs.mkdirSync(loop());
  resolver = await startResolver({ store });
  agent = await startAgent({ resolver: resolver.address, extra: ['--prefetch-entries', '0'] });
});

after(async () => {
  if (skip) return;
  forceUnmount(mnt());
  forceUnmount(loop());
  await agent?.stop();
  await resolver?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

test('statfs of an ext4 image layer equals the kernel loop mount of the image', { skip }, () => {
  agent!.mount('disk', mnt());
  const lo = spawnSync('mount', ['-o', 'ro,loop', path.join(work, 'store/img/fs.ext4'), loop()], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(lo.status, 0, lo.stderr);
  const ours = fs.statfsSync(mnt());
  const kernel = fs.statfsSync(loop());
  const host = fs.statfsSync(work);
  const fields = (s: fs.StatsFs): Record<string, number> => ({ bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree });
  assert.deepEqual(fields(ours), fields(kernel));
  assert.notDeepEqual(fields(ours), fields(host));
  // What df prints, byte for byte the same size and use.
  const df = spawnSync('df', ['-B1', '--output=size,used,avail', mnt(), loop()], { encoding: 'utf8', timeout: 10_000 });
  const [, a, b] = df.stdout.trim().split('\n');
  assert.equal(a.trim(), b.trim());
  forceUnmount(loop());
});

test('the image truncated under the mount: every read fails (EIO), the mount is degraded (the resolver still answers), status exits 1', { skip }, () => {
  assert.equal(fs.readdirSync(path.join(mnt(), 'd')).length, 10);
  // 64 KiB: the superblock stays, every inode table and data block goes (wherever mkfs put the files).
  fs.truncateSync(path.join(work, 'store/img/fs.ext4'), 64 << 10);
  for (let i = 0; i < 10; i++) {
    assert.throws(() => fs.readFileSync(path.join(mnt(), 'd', `f${i}`)), (e: NodeJS.ErrnoException) => e.code !== 'ENOENT' && e.code !== 'ENOTCONN', `d/f${i}`);
  }
  const listed = strata(['mounts', '--json', '--socket', agent!.socket]);
  assert.equal(listed.status, 0, listed.stderr);
  const [m] = (JSON.parse(listed.stdout) as { mounts: { state: string; health?: { lastError?: { errno: string } } }[] }).mounts;
  assert.equal(m.state, 'degraded');
  assert.ok(m.health?.lastError && !['ENOENT', 'ENOTDIR'].includes(m.health.lastError.errno), JSON.stringify(m.health));
  assert.match(strata(['mounts', '--socket', agent!.socket]).stdout, /degraded \(E[A-Z]+ x\d+\)/);
  const status = strata(['status', '--socket', agent!.socket]);
  assert.equal(status.status, 1);
  assert.match(status.stdout, new RegExp(`^status +DEGRADED: mount ${mnt()} is degraded$`, 'm'));
  agent!.umount(mnt(), true);
});
