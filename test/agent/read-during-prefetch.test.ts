import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { STRATA_BIN, canMountFuse, waitFor, type AgentProcess } from '@strata/harness';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * A mount's first READs are answered while the agent is still taking in its
 * prefetch Walk: a turn of the event loop between Walk batches (2c5a09e),
 * and slices of the walk that give way to waiting READs (be0f98c). The
 * resolver answers this Walk from its metadata index (built by a walk
 * before the mount), so it sends the tree faster than the agent takes it
 * in: without those turns, the batches already received were taken in as
 * microtasks one after another and a READ waited for them.
 *
 * What this cannot promise: it is an order between two processes, not a
 * proof. Here, the READs had their bytes when 1.5-21% of the walk was on
 * file (10 runs at load 4-10, 8 of them under 6%; 3-23% with 2c5a09e
 * alone); with both undone (a preload, not kept), at 60-100% (3 of 3 runs
 * past half, 1 after the end; with 2c5a09e undone before be0f98c came:
 * 97-100%). A regression is caught in most runs, not in
 * every one: batches pile up only while the resolver sends faster than the
 * agent takes them in, and the agent gets a turn whenever its pile runs out.
 *
 * The order is read from outside, twice. By the machine's one clock: when
 * the reader (a child process) had its bytes, against the time of the
 * agent's agent.prefetch.done line, logged once the last batch was taken
 * in. And by the mount's node journal (<socket>.state/<id>.nodes), which
 * gets a line for every ino the walk's directories are given as they are
 * taken in, written before the kernel can hear of them: its length when the
 * reader had its bytes, against its length once the walk was taken in.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const DIRS = 200;
const PER_DIR = 500;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** Last in walk order (sorted siblings, "z" after "d"): nothing of it is known from the walk before its READ. */
const FILE = 'z.bin';
/**
 * The reader's READs: 4 KiB each with O_DIRECT, so every one is a request
 * the agent's JavaScript answers, each needing turns of its event loop.
 */
const BLOCKS = 32;

interface Ran {
  status: string;
  stdout: string;
  stderr: string;
}

/** A command to its end (killed at `timeoutMs`), without blocking this thread: it drains the agent's log meanwhile. */
function runAsync(cmd: string, args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) =>
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 28, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ status: err ? String(err.code ?? err.signal) : '0', stdout, stderr }),
    ),
  );
}

describe('a READ while the prefetch Walk is still being taken in', { skip }, () => {
  let rig: StoreAndAgents;
  let agent: AgentProcess;
  const content = randomBytes(BLOCKS * 4096 + 3);

  before(async () => {
    const files: [string, Buffer | string][] = [[FILE, content]];
    for (let d = 0; d < DIRS; d++) for (let f = 0; f < PER_DIR; f++) files.push([`d${String(d).padStart(3, '0')}/f${f}`, '']);
    rig = await startStoreAndAgents({ prefix: 'read-during-prefetch', layers: { tree: files } });
    rig.createLayers(['--source', 'dir:layers/tree', '--name', 'tree']);
    // A walk before the mount builds the chain's metadata index: the mount's Walk is then sent as fast as it is read.
    const walked = await runAsync(process.execPath, [STRATA_BIN, 'walk', '--no-progress', 'tree', '/'], 180_000, { STRATA_RESOLVER: rig.resolver.address });
    assert.equal(walked.status, '0', walked.stderr);
    assert.ok(walked.stdout.split('\n').length > DIRS * PER_DIR, 'the walk listed the tree');
    await waitFor('the metadata index built', () => rig.resolver.logs.some((l) => l.event === 'resolver.metadata_index' && l.action === 'built') || undefined, 60_000);
    agent = await rig.startAgent({ extra: ['--prefetch-entries', String(4 * DIRS * PER_DIR)] });
  });

  after(() => rig?.close());

  test('READs of a file at a fresh mount are answered before the agent has taken in the whole Walk', async () => {
    const mnt = rig.mountpoint('mnt');
    agent.mount('tree', mnt);
    // The node journal's inos: lines "+ INO KEY" (awk fails on a missing file, and prints 0 for none).
    const journal = (): string => path.join(`${agent.socket}.state`, fs.readdirSync(`${agent.socket}.state`).find((f) => f.endsWith('.nodes')) ?? 'no-journal');
    const inos = `awk '/^[+] /{n++} END{print n+0}' "$2"`;
    // At once, from a child: the clock and the journal before and after its read.
    const read = await runAsync(
      'sh',
      ['-c', `date +%s%3N; ${inos}; dd if="$1" iflag=direct bs=4096 count=${BLOCKS} status=none | sha256sum; date +%s%3N; ${inos}`, 'sh', path.join(mnt, FILE), journal()],
      60_000,
    );
    assert.equal(read.status, '0', read.stderr);
    const [startLine, inosAtStart, sumLine, endLine, inosAtEnd] = read.stdout.trim().split('\n');
    assert.equal(sumLine.split(' ')[0], sha(content.subarray(0, BLOCKS * 4096)), 'the bytes read are the file\'s');
    const done = await waitFor('agent.prefetch.done', () => agent.logs.find((l) => l.event === 'agent.prefetch.done' && l.mountpoint === mnt), 120_000);
    assert.equal(done.complete, true, JSON.stringify(done));
    assert.ok(Number(done.entries) > DIRS * PER_DIR, `the whole tree was walked: ${String(done.entries)} entries`);
    // The premise: the resolver answered this Walk from its index (sent faster than it is taken in).
    const served = rig.resolver.logs.filter((l) => l.event === 'resolver.metadata_index' && l.action === 'served');
    assert.ok(served.length >= 1, 'the mount\'s Walk was answered from the metadata index');

    const takenIn = Date.parse(String(done.time));
    const readStart = Number(startLine);
    const readEnd = Number(endLine);
    const final = Number((await runAsync('sh', ['-c', inos, 'sh', '', journal()], 10_000)).stdout);
    console.log(
      `walk of ${String(done.entries)} entries taken in ${String(done.ms)} ms; the read began ${takenIn - readStart} ms and had its bytes ${takenIn - readEnd} ms before; ` +
        `node journal: ${inosAtStart} inos when the read began, ${inosAtEnd} when it had its bytes, ${final} at the end`,
    );
    assert.ok(readStart < takenIn, `the read began while the walk was being taken in (else this proves nothing): began ${readStart}, walk taken in ${takenIn}`);
    assert.ok(readEnd < takenIn, `the READs were answered before the whole Walk was taken in: the reader ended ${readEnd - takenIn} ms after it`);
    assert.ok(final > DIRS * PER_DIR, `the journal holds the tree: ${final} inos`);
    assert.ok(Number(inosAtEnd) < final / 2, `the READs were answered before half of the Walk was taken in: ${inosAtEnd} of ${final} inos on file`);
  });
});
