import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { skipReason } from './mount-harness';

const mountedUnder = (dir: string): string[] =>
  readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[1]?.startsWith(`${dir}/`));

describe('unmount finds its mount where it is now', { skip: skipReason() }, () => {
  it('detaches a mount whose parent directory was renamed after mounting', async () => {
    const base = mkdtempSync(join(tmpdir(), 'fuse-kernel-moved-'));
    const mnt = join(base, 'a', 'mnt');
    mkdirSync(mnt, { recursive: true });
    const toy = new ToyFs(1n);
    const s = await FuseSession.mount(mnt, toy.handlers(), { rootAttr: { mode: 0o040755 } });
    try {
      renameSync(join(base, 'a'), join(base, 'b'));
      assert.equal(mountedUnder(base).length, 1, 'the mount moved with its parent');
      await s.unmount();
      assert.deepEqual(mountedUnder(base), [], 'nothing left mounted');
    } finally {
      for (const l of mountedUnder(base)) spawnSync('umount', ['-l', l.split(' ')[1]]);
      rmSync(base, { recursive: true, force: true });
    }
  });
});
