import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import type { FuseHandlers } from './types';
import { cleanUp, run, skipReason, tempMountpoint } from './mount-harness';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * handlers.open: a node's first OPEN waits for JavaScript, which may register
 * the file's data first, so that very open is passthrough (a file read once
 * from its start never has a READ answered by the handler).
 */
describe('the open hook', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n);
  const data = randomBytes(3 * 1024 * 1024 + 5);
  // What read() would answer: the same size, other bytes, so a test sees who served it.
  const handed = toy.file(1n, 'handed', Buffer.alloc(data.length, 0x2a));
  const kept = toy.file(1n, 'kept', Buffer.from('served by read()'));
  const failing = toy.file(1n, 'failing', Buffer.from('served by read() too'));
  const asked: bigint[] = [];
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  const store = mkdtempSync(join(tmpdir(), 'fuse-kernel-open-hook-'));

  before(async () => {
    writeFileSync(join(store, 'handed'), data);
    mnt = tempMountpoint();
    const handlers: FuseHandlers = {
      ...toy.handlers(),
      open: async (ino) => {
        asked.push(ino);
        await new Promise((r) => setTimeout(r, 20));
        if (ino === failing.ino) throw new Error('no backing file for this one');
        if (ino !== handed.ino) return;
        const fd = openSync(join(store, 'handed'), 'r');
        try {
          session?.setFileData(ino, fd);
        } finally {
          closeSync(fd);
        }
      },
    };
    session = await FuseSession.mount(mnt.path, handlers, { rootAttr: toy.nodes.get(1n)?.attr });
  });

  after(async () => {
    await cleanUp(session, mnt);
    rmSync(store, { recursive: true, force: true });
  });

  it('makes a first open passthrough when the handler registers the file', async (t) => {
    const s = session;
    if (!s?.passthroughAvailable || !mnt) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
    const r = await run('sh', ['-c', `dd if=${join(mnt.path, 'handed')} bs=1M status=none | sha256sum`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString().split(' ')[0], sha(data));
    assert.equal(toy.called('read'), 0, 'no READ reached JavaScript');
    assert.equal(s.stats().backings, 1);
  });

  it('opens as before when the handler registers nothing or fails, and asks once per node', async (t) => {
    const s = session;
    if (!s?.passthroughAvailable || !mnt) return t.skip('the kernel did not offer FUSE_PASSTHROUGH');
    const r = await run('sh', ['-c', `for i in 1 2 3; do cat ${join(mnt.path, 'kept')}; echo; cat ${join(mnt.path, 'failing')}; echo; cat ${join(mnt.path, 'handed')} > /dev/null; done`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'served by read()\nserved by read() too\n'.repeat(3));
    assert.deepEqual(
      [...asked].sort((a, b) => Number(a - b)),
      [handed.ino, kept.ino, failing.ino].sort((a, b) => Number(a - b)),
    );
  });
});
