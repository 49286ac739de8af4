import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, StrataError } from '@strata/errors';
import type { Layer } from '@strata/layers';
import { MountReporter, type ReportedMount } from './mount-reporter';

const layer = { layerId: 7, source: 'dir:x', filesystemPath: '', layerType: 'base', baseLayerId: 0, mountOptions: [] } as unknown as Layer;

function reporter(chainOf: () => Promise<Layer[]>, mayKeep?: () => Promise<string | undefined>) {
  const withdrawn: Array<[string, string]> = [];
  const mounts: ReportedMount[] = [{ mountpoint: '/mnt/a', layerId: 7, chain: [layer] }];
  const r = new MountReporter({
    mounts: () => mounts,
    send: async () => undefined,
    chainOf,
    withdraw: async (mp, reason) => void withdrawn.push([mp, reason]),
    mayKeep,
    onError: () => undefined,
  });
  return { r, withdrawn };
}

describe('MountReporter', () => {
  it('keeps a mount whose chain is as mounted and whose owner may keep it', async () => {
    const { r, withdrawn } = reporter(async () => [layer], async () => undefined);
    await r.changed();
    assert.deepEqual(withdrawn, []);
  });

  it('withdraws a mount whose layer was deleted or changed by force', async () => {
    const gone = reporter(async () => Promise.reject(StrataError.notFound('no layer')));
    await gone.r.changed();
    assert.match(gone.withdrawn[0]?.[1] ?? '', /deleted by force/);
    const changed = reporter(async () => [{ ...layer, source: 'dir:y' } as Layer]);
    await changed.r.changed();
    assert.match(changed.withdrawn[0]?.[1] ?? '', /changed by force/);
  });

  it("withdraws a mount once the agent's access to its layer is revoked, or its owner's grant is", async () => {
    const agent = reporter(async () => Promise.reject(new StrataError(Errno.EACCES, 'permission denied')));
    await agent.r.changed();
    assert.match(agent.withdrawn[0]?.[1] ?? '', /access to layer 7 was revoked/);
    const user = reporter(async () => [layer], async () => 'the grant was revoked');
    await user.r.changed();
    assert.deepEqual(user.withdrawn, [['/mnt/a', 'the grant was revoked']]);
  });

  it('keeps serving while no resolver answers', async () => {
    const { r, withdrawn } = reporter(async () => Promise.reject(StrataError.unavailable('no resolver')), async () => Promise.reject(new Error('away')));
    await r.changed();
    assert.deepEqual(withdrawn, []);
  });
});
