import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forgetDesiredMount } from '@strata/agent-control';
import { DesiredState } from './desired-state';

describe('desired state', () => {
  it('keeps what strata mount made across agents; a foreign or damaged file is told and read as nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-desired-'));
    try {
      const file = path.join(dir, 'desired.json');
      const problems: string[] = [];
      const a = new DesiredState(file);
      assert.deepEqual(await a.load((p) => problems.push(p)), []);
      await a.add({ layer: 'vm', mountpoint: '/mnt/a', hard: false });
      await a.add({ layer: 'db', mountpoint: '/mnt/b', hard: true, caller: { uid: 1000, gid: 1000, pid: 9, name: 'ann', groups: ['ann'] } });
      await a.add({ layer: 'vm2', mountpoint: '/mnt/a', hard: false });
      await a.remove('/mnt/none');
      const b = new DesiredState(file);
      const loaded = await b.load((p) => problems.push(p));
      assert.deepEqual(loaded.map((m) => [m.layer, m.mountpoint, m.hard]), [
        ['db', '/mnt/b', true],
        ['vm2', '/mnt/a', false],
      ]);
      assert.equal(loaded[0].caller?.uid, 1000);
      // strata umount with no agent: forgotten in the file.
      const socket = path.join(dir, 'agent.sock');
      fs.mkdirSync(`${socket}.state`);
      fs.copyFileSync(file, path.join(`${socket}.state`, 'desired.json'));
      await forgetDesiredMount(socket, '/mnt/b');
      assert.deepEqual((await new DesiredState(path.join(`${socket}.state`, 'desired.json')).load((p) => problems.push(p))).map((m) => m.mountpoint), ['/mnt/a']);
      assert.deepEqual(problems, []);
      for (const text of ['{"format":"strata-agent-desired","version":2,"mounts":[]}', 'not json', '{"format":"strata-agent-desired","version":1,"mounts":[{"layer":"x","mountpoint":"rel","hard":false}]}']) {
        fs.writeFileSync(file, text);
        const seen: string[] = [];
        const got = await new DesiredState(file).load((p) => seen.push(p));
        assert.deepEqual(got, []);
        assert.equal(seen.length, 1, text);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
