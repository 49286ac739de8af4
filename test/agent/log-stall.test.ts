import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canMountFuse, forceUnmount, startAgent, startResolver, strata, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * Issue 28: an agent whose stderr reader stops reading (here the test
 * itself, blocked in spawnSync while a command reads through the mount)
 * must go on serving. With a logger that waits for the reader, the agent's
 * thread stopped on the first line that did not fit the pipe and every
 * read waited for the kernel's deadline.
 */

const FILES = 3000;
const skip = canMountFuse() ? false : 'needs root and /dev/fuse';

let fx: StoreFixture | undefined;
let resolver: ResolverProcess | undefined;
let agent: AgentProcess | undefined;
let mnt: string | undefined;

before(async () => {
  if (skip) return;
  fx = await makeStore([{ entries: Array.from({ length: FILES }, (_, i) => ({ type: 'file' as const, path: `/d/f${i}`, content: `file ${i}\n` })) }]);
  resolver = await startResolver({ store: fx.store });
  mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-log-stall-'));
  // Debug level: a few lines per file, far more than a pipe holds.
  agent = await startAgent({ resolver: resolver.address, mounts: [`l0:${mnt}`], env: { STRATA_LOG_LEVEL: 'debug' } });
});

after(async () => {
  if (mnt) forceUnmount(mnt);
  await agent?.stop();
  await resolver?.stop();
  if (mnt) fs.rmSync(mnt, { recursive: true, force: true });
  fx?.cleanup();
});

describe('an agent whose log reader stalls', () => {
  test('serves a command that reads every file while nobody reads its stderr, and its lines arrive or are counted afterwards', { skip }, async () => {
    const a = agent!;
    const before = a.logs.length;
    const t0 = Date.now();
    // spawnSync: this process reads nothing (the agent's stderr included) until the command ends.
    const r = spawnSync('sh', ['-c', `cat ${mnt}/d/* | wc -l`], { encoding: 'utf8', timeout: 60_000 });
    const ms = Date.now() - t0;
    assert.equal(r.signal, null, `the command was stopped after ${ms} ms: the agent stalled`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(Number(r.stdout.trim()), FILES);
    // Well under the FUSE deadline (30 s) even on a loaded machine: no read waited for it.
    assert.ok(ms < 20_000, `${ms} ms`);

    // The reader is back: what was held arrives, or is counted in log.dropped.
    await waitFor('the agent logs drained', () => a.logs.length > before || undefined);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const during = a.logs.slice(before);
    const bytes = during.reduce((n, l) => n + JSON.stringify(l).length + 1, 0);
    const dropped = during.filter((l) => l.event === 'log.dropped').reduce((n, l) => n + Number(l.lines), 0);
    // The premise: the agent logged more than a pipe holds while nobody read (about 100 KiB; else this test proves nothing).
    assert.ok(bytes + dropped * 200 > 256 << 10, `only ${bytes} bytes (+${dropped} dropped lines) logged during the read`);
    // Every FUSE request in between was served: the agent answers its control socket at once.
    const status = strata(['mounts', '--socket', a.socket, '--json']);
    assert.equal(status.status, 0, status.stderr);
  });
});
