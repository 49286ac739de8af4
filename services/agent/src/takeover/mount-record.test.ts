import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { MOUNT_RECORD_FORMAT, MOUNT_RECORD_VERSION, parseMountRecord, readMountRecord, writeMountRecord, type MountRecord } from './mount-record';

const layer = { layerId: 7, baseLayerId: 0, name: 'base', source: 'dir:layers/0', filesystemPath: '/', layerType: 'base' as const, mountOptions: ['read-only' as const], generation: 1, createTimeMs: 1, updateTimeMs: 1 };

function record(): MountRecord {
  return {
    format: MOUNT_RECORD_FORMAT,
    version: MOUNT_RECORD_VERSION,
    id: 'k3-1-0a0b0c0d',
    layer: 'base',
    chain: [layer],
    mountpoint: '/mnt/x',
    hard: false,
    owner: { uid: 1000, pid: 42, name: 'ann' },
    allowOther: false,
    privateTo: { uid: 1000, gid: 1000 },
    hostUser: { uid: 1000, gid: 1000, pid: 42, name: 'ann', groups: ['ann', 'vm'] },
    flags: ['ro', 'nosuid', 'nodev'],
    mountedAt: '2026-12-07T00:00:00.000Z',
    handover: { format: 'strata-fuse-handover', version: 1 },
    nodes: '/run/strata/agent.sock.state/k3-1-0a0b0c0d.nodes',
  };
}

function errnoOf(f: () => unknown): number | undefined {
  try {
    f();
  } catch (err) {
    return isStrataError(err) ? err.errno : -1;
  }
  return undefined;
}

describe('mount record', () => {
  it('reads back what was written (atomically, to a file)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-record-'));
    try {
      const file = path.join(dir, 'r.mount.json');
      await writeMountRecord(file, record());
      assert.deepEqual(await readMountRecord(file), record());
      await assert.rejects(readMountRecord(path.join(dir, 'absent')), (e: unknown) => isStrataError(e) && e.errno === Errno.ENOENT);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses another format or version (EOPNOTSUPP, saying which) and a damaged record (EUCLEAN, saying what)', () => {
    const text = (v: unknown): string => JSON.stringify(v);
    assert.equal(errnoOf(() => parseMountRecord(text({ ...record(), version: 2 }), 'r')), Errno.EOPNOTSUPP);
    assert.throws(() => parseMountRecord(text({ ...record(), version: 2 }), 'r'), /version 2; this agent reads version 1/);
    assert.equal(errnoOf(() => parseMountRecord(text({ ...record(), format: 'other' }), 'r')), Errno.EOPNOTSUPP);
    assert.equal(errnoOf(() => parseMountRecord('[1,2]', 'r')), Errno.EOPNOTSUPP);
    assert.equal(errnoOf(() => parseMountRecord('{"format":"strata-agent-mount","vers', 'r')), Errno.EUCLEAN);
    const damaged: Record<string, unknown>[] = [
      { id: '../../etc/passwd' },
      { chain: [] },
      { chain: [{ layerId: 'x' }] },
      { mountpoint: 'relative' },
      { hard: 'yes' },
      { owner: { uid: 'root' } },
      { hostUser: { uid: 1, gid: 1, pid: 1, groups: [3] } },
      { flags: 'ro' },
      { handover: null },
      { nodes: 'relative.nodes' },
    ];
    for (const d of damaged) {
      assert.equal(errnoOf(() => parseMountRecord(text({ ...record(), ...d }), 'r')), Errno.EUCLEAN, JSON.stringify(d));
    }
  });
});
