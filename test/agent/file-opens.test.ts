import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canMountFuse, strata, waitFor, type AgentProcess } from '@strata/harness';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * `strata agent --file-opens kernel` on real processes: a sealed mount's
 * files are opened by the kernel itself (FUSE no_open), so after the first
 * open no OPEN or RELEASE reaches the agent and re-reads come from the page
 * cache; a LIVE or audited mount still opens through the agent; and a
 * successor taking the mount over keeps serving it in that mode. What
 * reached each session is read from its `agent.fuse.session_stats` line
 * (logged when it stops serving); every byte is checked against the source.
 */

const skip = canMountFuse() ? false : 'needs root and /dev/fuse';
const FILES = 60;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** sha256 of each file as another process reads it, in order. */
function sums(files: string[]): string[] {
  const r = spawnSync('sha256sum', files, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `sha256sum: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => l.split(' ')[0]);
}

type Line = Record<string, unknown>;

describe('--file-opens kernel', { skip }, () => {
  let rig: StoreAndAgents;
  let work: string;
  let socket: string;
  const data = new Map<string, Buffer>();
  /** Read only after the takeover: the successor serves their READs. */
  const later = new Map<string, Buffer>();
  const live = new Map<string, Buffer>();

  const events = (a: AgentProcess, name: string): Line[] => a.logs.filter((l) => l.event === name);
  // Killed at the end (SIGKILL), their holder after them: a takeover agent's mounts outlive it.
  const agentOn = (): Promise<AgentProcess> =>
    rig.startAgent({ socket, takeover: true, extra: ['--file-opens', 'kernel', '--prefetch-entries', '0', '--data-cache-dir', path.join(work, 'cache')] }, 'SIGKILL');
  const mountpoint = (name: string): string => rig.mountpoint(`mnt-${name}`);
  const sessionStats = (a: AgentProcess, mnt: string): Line | undefined => events(a, 'agent.fuse.session_stats').find((l) => l.mountpoint === mnt);

  before(async () => {
    for (let i = 0; i < FILES; i++) data.set(`d${i % 3}/f${i}`, randomBytes(1 + ((i * 7919) % 200_000)));
    data.set('empty', Buffer.alloc(0));
    for (let i = 0; i < 10; i++) later.set(`later/g${i}`, randomBytes(1 + i * 30_011));
    live.set('changing.bin', randomBytes(100_000));
    live.set('log.txt', Buffer.from('first line\n'));
    rig = await startStoreAndAgents({ prefix: 'file-opens', layers: { data: [...data, ...later], live } });
    work = rig.work;
    fs.mkdirSync(path.join(work, 'cache'));
    socket = path.join(work, 'agent', 'agent.sock');
    fs.mkdirSync(path.dirname(socket));
    rig.killHolderAtClose(socket);
    rig.createLayers(
      ['--source', 'dir:layers/data', '--name', 'data'],
      ['--source', 'dir:layers/live', '--option', 'live', '--name', 'live'],
      ['--source', 'dir:layers/data', '--option', 'audit', '--name', 'audited'],
    );
  });

  after(() => rig?.close());

  test('a sealed mount: every file right, no OPEN per file, no RELEASE, re-reads from the page cache; LIVE and audited mounts open through the agent; a successor keeps the mode', async () => {
    const first = await agentOn();
    const sealed = mountpoint('data');
    first.mount('data', sealed);
    const liveMnt = mountpoint('live');
    first.mount('live', liveMnt);
    const audited = mountpoint('audited');
    first.mount('audited', audited);

    // The log arrives through a pipe this thread drains between awaits.
    await waitFor('three mounts logged', () => (events(first, 'agent.mounted').length >= 3 ? true : undefined));
    const mounted = new Map(events(first, 'agent.mounted').map((l) => [l.mountpoint, l] as const));
    assert.equal(mounted.get(sealed)?.fileOpens, 'kernel');
    assert.equal(mounted.get(sealed)?.dataServing, 'pread', 'no passthrough where the kernel opens files');
    assert.equal(mounted.get(liveMnt)?.fileOpens, 'agent');
    assert.equal(mounted.get(audited)?.fileOpens, 'agent');
    const refused = events(first, 'agent.file_opens.agent').map((l) => String(l.reason));
    assert.equal(refused.length, 2, 'one line for the LIVE mount, one for the audited one');
    assert.ok(refused.some((r) => /LIVE/.test(r)) && refused.some((r) => /audited/.test(r)), refused.join('; '));

    const rels = [...data.keys()];
    const want = rels.map((r) => sha(data.get(r) as Buffer));
    const files = (root: string): string[] => rels.map((r) => path.join(root, r));
    // Twice in one child, then again: every byte right each time.
    assert.deepEqual(sums([...files(sealed), ...files(sealed)]), [...want, ...want]);
    assert.deepEqual(sums(files(sealed)), want);
    const liveRels = [...live.keys()];
    assert.deepEqual(sums(liveRels.map((r) => path.join(liveMnt, r))), liveRels.map((r) => sha(live.get(r) as Buffer)));
    assert.deepEqual(sums(files(audited)), want);

    // Handed over (SIGTERM with takeover): each session logs what reached it.
    assert.equal(await first.stop(), 0);
    const s1 = await waitFor('the first agent\'s session counters', () => sessionStats(first, sealed));
    assert.equal(s1.fileOpens, 'kernel');
    // 3 × 61 opens of files: at most the connection's first one or two reached the session, and no RELEASE.
    assert.ok(Number(s1.opens) >= 1 && Number(s1.opens) <= 2, `opens ${String(s1.opens)}`);
    assert.equal(s1.releases, 0);
    const l1 = sessionStats(first, liveMnt);
    assert.equal(l1?.fileOpens, 'agent');
    assert.equal(l1?.opens, liveRels.length, 'the LIVE mount\'s opens all reached the agent');
    assert.equal(l1?.releases, liveRels.length);
    const a1 = sessionStats(first, audited);
    assert.equal(a1?.fileOpens, 'agent');
    assert.equal(a1?.opens, rels.length);

    // The successor serves the same connections, the sealed one still without OPENs.
    const second = await agentOn();
    await waitFor('three mounts taken over', () => (events(second, 'agent.mount_taken_over').length >= 3 ? true : undefined));
    const taken = new Map(events(second, 'agent.mount_taken_over').map((l) => [l.mountpoint, l] as const));
    assert.equal(taken.get(sealed)?.fileOpens, 'kernel');
    assert.equal(taken.get(liveMnt)?.fileOpens, 'agent');
    // Operators see each mount's mode too.
    const listed = strata(['--json', 'mounts', '--socket', socket], {});
    assert.equal(listed.status, 0, listed.stderr);
    const modes = new Map((JSON.parse(listed.stdout) as { mounts: { mountpoint: string; fileOpens?: string }[] }).mounts.map((m) => [m.mountpoint, m.fileOpens] as const));
    assert.deepEqual([modes.get(sealed), modes.get(liveMnt), modes.get(audited)], ['kernel', 'agent', 'agent']);
    const laterRels = [...later.keys()];
    assert.deepEqual(sums([...laterRels.map((r) => path.join(sealed, r)), ...files(sealed)]), [...laterRels.map((r) => sha(later.get(r) as Buffer)), ...want]);
    assert.deepEqual(sums(liveRels.map((r) => path.join(liveMnt, r))), liveRels.map((r) => sha(live.get(r) as Buffer)));
    assert.equal(await second.stop(), 0);
    const s2 = await waitFor('the successor\'s session counters', () => sessionStats(second, sealed));
    assert.equal(s2.fileOpens, 'kernel');
    assert.equal(s2.opens, 0, 'the kernel kept opening files itself');
    assert.equal(s2.releases, 0);
    assert.ok(Number(s2.toJs) + Number(s2.preadReads) > 0, 'the successor served the READs of files never read before');
    assert.equal(sessionStats(second, liveMnt)?.opens, liveRels.length);
  });
});
