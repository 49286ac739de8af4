import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { canMountFuse, freePort, waitFor, type AgentProcess } from '@strata/harness';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * `strata agent --store-view DIR` where the kernel opens files (the default
 * for sealed mounts): a large `dir:` file is mapped and handed over before
 * anyone reads it — when a listing names it (READDIR, or the prefetch walk once it is done), a deeper file at its
 * lookup — so its first READ is served without JavaScript (no map waited
 * for inside the reader's clock). The resolver's own metrics say when
 * ExtentMap was asked. Where the agent opens files, nothing is mapped
 * before a read (its OPEN hands a file over before any READ).
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const MiB = 1024 * 1024;
const run = promisify(execFile);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Requests the resolver served of methods matching `re` (each method's latency count), from its Prometheus endpoint. */
async function servedOf(metricsUrl: string, re: RegExp): Promise<number> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5_000);
  try {
    const text = await (await fetch(metricsUrl, { signal: ctl.signal })).text();
    let n = 0;
    for (const m of text.matchAll(/^strata_resolver_request_duration\w*_count\{[^}]*method="([^"]+)"[^}]*\} (\d+)$/gm)) if (re.test(m[1])) n += Number(m[2]);
    return n;
  } finally {
    clearTimeout(timer);
  }
}

const EXTENT_MAP = /ExtentMap$/;
const SESSION_READ = /^Session\.read$/i;

describe('large files handed over ahead of their first READ (--store-view, kernel opens)', { skip }, () => {
  let rig: StoreAndAgents;
  let metricsUrl: string;
  const data = new Map<string, Buffer>();

  before(async () => {
    data.set('big.img', randomBytes(3 * MiB + 777));
    data.set('small.txt', Buffer.from('small\n'));
    data.set('sub/deep/disk.bin', randomBytes(2 * MiB));
    data.set('sub/deep/note.txt', Buffer.from('note\n'));
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    rig = await startStoreAndAgents({ prefix: 'large-ahead', layers: { data }, resolverExtra: ['--metrics-listen', `127.0.0.1:${port}`] });
    rig.createLayers(['--source', 'dir:layers/data', '--name', 'data']);
  });

  after(() => rig?.close());

  /** sha256 of a file as another process reads it. */
  const shaThrough = async (file: string): Promise<string> => (await run('sha256sum', [file], { timeout: 30_000, encoding: 'utf8' })).stdout.split(' ')[0];

  test("a large file is mapped when a listing names it, a deeper one at its lookup; their reads then ask nothing", async (t) => {
    const agent: AgentProcess = await rig.startAgent({ extra: ['--store-view', rig.store, '--prefetch-entries', '0', '--deadline-ms', '5000'] });
    const maps0 = await servedOf(metricsUrl, EXTENT_MAP);
    const mnt = rig.mountpoint('mnt-kernel');
    agent.mount('data', mnt);
    const mounted = await waitFor('mounted logged', () => agent.logs.find((l) => l.event === 'agent.mounted' && l.mountpoint === mnt));
    if (mounted.fileOpens !== 'kernel') return t.skip('the kernel did not offer FUSE_NO_OPEN_SUPPORT');
    // Nothing read yet: the root's listing (READDIR: no prefetch walk here) names big.img, whose map is asked at once.
    await run('ls', ['-l', mnt], { timeout: 30_000 });
    await waitFor('big.img mapped at its listing', async () => ((await servedOf(metricsUrl, EXTENT_MAP)) > maps0 ? true : undefined), 10_000);
    const maps1 = await servedOf(metricsUrl, EXTENT_MAP);
    const reads1 = await servedOf(metricsUrl, SESSION_READ);
    assert.equal(await shaThrough(`${mnt}/big.img`), sha(data.get('big.img')!));
    assert.equal(await servedOf(metricsUrl, EXTENT_MAP), maps1, 'its reads asked no map');
    assert.equal(await servedOf(metricsUrl, SESSION_READ), reads1, 'nor any Session read');
    // A deeper large file: looked up (stat), not read — its map is asked then.
    await run('stat', [`${mnt}/sub/deep/disk.bin`], { timeout: 30_000 });
    await waitFor('disk.bin mapped at its lookup', async () => ((await servedOf(metricsUrl, EXTENT_MAP)) > maps1 ? true : undefined), 10_000);
    const maps2 = await servedOf(metricsUrl, EXTENT_MAP);
    assert.equal(await shaThrough(`${mnt}/sub/deep/disk.bin`), sha(data.get('sub/deep/disk.bin')!));
    assert.equal(await servedOf(metricsUrl, EXTENT_MAP), maps2, 'its reads asked no map');
    // A small file still comes exact (handed over at its first READ).
    assert.equal(await shaThrough(`${mnt}/small.txt`), sha(data.get('small.txt')!));
    agent.umount(mnt);
  });

  test('where the agent opens files, nothing is mapped before a read', async () => {
    const agent = await rig.startAgent({ extra: ['--store-view', rig.store, '--prefetch-entries', '0', '--deadline-ms', '5000', '--file-opens', 'agent'] });
    const maps0 = await servedOf(metricsUrl, EXTENT_MAP);
    const mnt = rig.mountpoint('mnt-agent');
    agent.mount('data', mnt);
    await run('stat', [`${mnt}/big.img`, `${mnt}/sub/deep/disk.bin`], { timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await servedOf(metricsUrl, EXTENT_MAP), maps0);
    assert.equal(await shaThrough(`${mnt}/big.img`), sha(data.get('big.img')!));
    agent.umount(mnt);
  });
});
