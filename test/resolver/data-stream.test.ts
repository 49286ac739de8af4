import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { startResolver, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

const MiB = 1 << 20;
const started: ResolverProcess[] = [];
let fx: StoreFixture | undefined;
after(async () => {
  for (const r of started) await r.stop('SIGKILL').catch(() => undefined);
  fx?.cleanup();
});

describe('Session reads over the data stream', () => {
  test('a resolver SIGKILLed, then one SIGTERMed, under 1 MiB reads: every read answered byte-exact by the others', async () => {
    const data = Buffer.alloc(64 * MiB);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    fx = await makeStore([{ entries: [{ type: 'file', path: '/a', content: 'a' }] }]);
    fs.writeFileSync(path.join(fx.rootsTopFirst[0], 'big.img'), data);
    const rs = [];
    for (let i = 0; i < 3; i++) rs.push(await startResolver({ store: fx.store, extra: ['--grace-ms', '3000'] }));
    started.push(...rs);
    const client = new StrataClient({ resolver: rs.map((r) => r.address) });
    const events: string[] = [];
    const s = client.session({ deadlineMs: 10_000, onEvent: (e) => events.push(`session ${e.type} ${e.address}`), onDataEvent: (e) => events.push(`data ${e.type} ${e.address}`) });
    const layer = { ref: { $case: 'id' as const, id: fx.layers[0].layerId } };
    let ok = 0;
    let next = 0;
    // Ends the killer's waits if the reads fail (they throw after their deadline) or take too long.
    let over = false;
    const until = async (n: number): Promise<void> => {
      const end = Date.now() + 60_000;
      while (ok < n && !over && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    };
    const killer = (async () => {
      await until(16);
      if (over) return;
      const on = events.filter((e) => e.startsWith('data connected')).pop()!.split(' ').pop();
      rs.find((r) => r.address === on)!.child.kill('SIGKILL');
      await until(40);
      if (over) return;
      const on2 = events.filter((e) => e.startsWith('session connected')).pop()!.split(' ').pop();
      rs.find((r) => r.address === on2)!.child.kill('SIGTERM');
    })();
    const readers = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < 64) {
          const i = next++;
          const a = await s.request({ $case: 'read', read: { layer, path: Buffer.from('/big.img'), offset: i * MiB, length: MiB } });
          assert.ok(a.$case === 'read' && a.read.data.equals(data.subarray(i * MiB, (i + 1) * MiB)), `chunk ${i}`);
          ok++;
        }
      }),
    ).finally(() => (over = true));
    await readers;
    await killer;
    assert.equal(events.filter((e) => e.startsWith('data connected')).length >= 3, true, events.join('\n'));
    s.close();
    client.close();
  });
});
