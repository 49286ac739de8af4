import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { storedMounts } from './systemd-store';

describe('systemd fd store', () => {
  it("groups the passed fds by mount id in the order passed, and leaves others' alone", () => {
    const r = storedMounts([
      { name: 'a1-1-00ff', fd: 3 },
      { name: 'b2-4-abcd', fd: 4 },
      { name: 'a1-1-00ff', fd: 5 },
      { name: 'stored', fd: 6 },
      { name: 'Not:Ours', fd: 7 },
      { name: 'a1-1-00ff', fd: 8 },
    ]);
    assert.deepEqual(r.mounts, [
      { id: 'a1-1-00ff', fds: [3, 5, 8] },
      { id: 'b2-4-abcd', fds: [4] },
      { id: 'stored', fds: [6] },
    ]);
    assert.deepEqual(r.others, [{ name: 'Not:Ours', fd: 7 }]);
  });
});
