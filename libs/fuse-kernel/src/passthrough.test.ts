import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStrataError } from '@strata/errors';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { cleanUp, run, skipReason, tempMountpoint } from './mount-harness';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('FUSE passthrough', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n);
  const data = randomBytes(4 * 1024 * 1024 + 17);
  // What read() would answer: the same size, other bytes, so a test sees who served it.
  const file = toy.file(1n, 'blob', Buffer.alloc(data.length, 0x2a));
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  const store = mkdtempSync(join(tmpdir(), 'fuse-kernel-backing-'));

  before(async () => {
    writeFileSync(join(store, 'blob'), data);
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr });
  });

  after(async () => {
    await cleanUp(session, mnt);
    rmSync(store, { recursive: true, force: true });
  });

  it('is negotiated on this kernel', (t) => {
    if (!session?.passthroughAvailable) t.skip('the kernel did not offer FUSE_PASSTHROUGH');
  });

  it('serves a file from its backing file with no READ reaching JavaScript', async (t) => {
    const s = session;
    if (!s?.passthroughAvailable || !mnt) return t.skip('no passthrough');
    const fd = openSync(join(store, 'blob'), 'r');
    try {
      s.setPassthrough(file.ino, fd);
    } finally {
      closeSync(fd); // the kernel holds its own reference
    }
    const r = await run('sh', ['-c', `cat ${join(mnt.path, 'blob')} | sha256sum; dd if=${join(mnt.path, 'blob')} bs=4096 skip=77 count=1 status=none | sha256sum`]);
    assert.equal(r.status, 0, r.stderr);
    const [whole, block] = r.stdout.toString().trim().split('\n').map((l) => l.split(' ')[0]);
    assert.equal(whole, sha(data));
    assert.equal(block, sha(data.subarray(77 * 4096, 78 * 4096)));
    assert.equal(toy.called('read'), 0);
    assert.equal(s.stats().backings, 1);
  });

  it('goes back to read() for opens after clearPassthrough', async (t) => {
    const s = session;
    if (!s?.passthroughAvailable || !mnt) return t.skip('no passthrough');
    s.clearPassthrough(file.ino);
    const r = await run('sh', ['-c', `head -c 4 ${join(mnt.path, 'blob')}`]);
    assert.equal(r.stdout.toString(), '****');
    assert.ok(toy.called('read') > 0);
  });

  it('refuses a bad fd with its errno', (t) => {
    const s = session;
    if (!s?.passthroughAvailable) return t.skip('no passthrough');
    assert.throws(() => s.setPassthrough(file.ino, 987654), (e: unknown) => isStrataError(e) && e.errno === 9);
  });
});
