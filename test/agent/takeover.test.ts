import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HolderClient, bindDatagram, closeFd, receivePacket } from '@strata/fuse-kernel';
import { STRATA_BIN, canMountFuse, canMountOverlay, forceUnmount, mountOverlay, startAgent, startResolver, strata, waitFor, type AgentProcess, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { wideStack } from '../support/wide-fixture';
import { within } from '../support/bounded';
import { killHolder } from './store-and-agents';

/**
 * Issue 27: mounts outlive their agent. Real processes throughout: a
 * resolver, agents started and killed on one control socket, readers
 * (find, a checksum walk) running in child processes on a dir: chain and a
 * qcow2 chain the whole time.
 */

const haveQemuImg = spawnSync('sh', ['-c', 'command -v qemu-img && command -v mke2fs'], { stdio: 'ignore' }).status === 0;
const skip = canMountFuse() && canMountOverlay() && haveQemuImg ? false : 'needs root, /dev/fuse, overlayfs, qemu-img and mke2fs';

const FIND_FORMAT = '%P|%y|%m|%s|%n\\n';
/** Entries in /big: a listing of several getdents buffers, read across a takeover. */
const BIG = 2500;

/**
 * A find loop: one line per pass, "OK <md5 of the sorted output>" or "FAIL <stderr>", until the stop file exists.
 */
const FIND_LOOP = `cd "$1" || exit 9
while [ ! -e "$2" ]; do
  if find . -printf '${FIND_FORMAT}' > "$3.out" 2> "$3.err" && [ ! -s "$3.err" ]; then
    echo "OK $(sort "$3.out" | md5sum | cut -c1-32) $(date +%s%3N)"
  else
    echo "FAIL $(head -c 300 "$3.err" | tr '\\n' ' ') $(date +%s%3N)"
  fi
done`;

/**
 * A checksum walk: every entry lstat'ed, every file read and hashed, each
 * system call timed (the longest is the reader's stall); one JSON line per pass.
 */
const SUM_LOOP = `
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const [root, stop] = process.argv.slice(1);
let maxOp = 0, maxOpAt = 0;
function op(f) {
  const t = process.hrtime.bigint();
  try { return f(); } finally {
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (ms > maxOp) { maxOp = ms; maxOpAt = Date.now(); }
  }
}
function walk(dir, h) {
  for (const n of op(() => fs.readdirSync(dir)).sort()) {
    const p = path.join(dir, n);
    const st = op(() => fs.lstatSync(p));
    h.update(n + '|' + st.mode + '|' + st.size + '\\n');
    if (st.isDirectory()) walk(p, h);
    else if (st.isFile()) h.update(crypto.createHash('sha256').update(op(() => fs.readFileSync(p))).digest('hex') + '\\n');
  }
}
for (let i = 0; !fs.existsSync(stop); i++) {
  const h = crypto.createHash('sha256');
  try {
    walk(root, h);
    process.stdout.write(JSON.stringify({ ok: true, hash: h.digest('hex'), maxOp, maxOpAt, at: Date.now() }) + '\\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, err: String(e.code || e.message), at: Date.now() }) + '\\n');
  }
}`;

interface Pass {
  ok: boolean;
  hash?: string;
  err?: string;
  at: number;
  maxOp?: number;
  maxOpAt?: number;
}

class Loop {
  readonly passes: Pass[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private rest = '';

  constructor(
    readonly name: string,
    kind: 'find' | 'sum',
    root: string,
    readonly stopFile: string,
  ) {
    this.child =
      kind === 'find'
        ? spawn('bash', ['-c', FIND_LOOP, 'find-loop', root, stopFile, `${stopFile}.${name}`], { stdio: ['ignore', 'pipe', 'inherit'] })
        : spawn(process.execPath, ['-e', SUM_LOOP, root, stopFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (this.rest + d).split('\n');
      this.rest = lines.pop()!;
      for (const l of lines) this.passes.push(kind === 'find' ? findPass(l) : (JSON.parse(l) as Pass));
    });
    this.exited = new Promise((resolve) => this.child.on('close', () => resolve()));
  }

  /** Waits until `n` more passes have ended. */
  async more(n: number, ms = 60_000): Promise<void> {
    const target = this.passes.length + n;
    await waitFor(`${n} more passes of ${this.name}`, () => this.passes.length >= target || undefined, ms);
  }

  async stop(): Promise<void> {
    await within(`${this.name} to end`, this.exited, 120_000);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

function findPass(line: string): Pass {
  const parts = line.split(' ');
  const at = Number(parts[parts.length - 1]);
  return parts[0] === 'OK' ? { ok: true, hash: parts[1], at } : { ok: false, err: parts.slice(1, -1).join(' '), at };
}

function findHash(root: string): string {
  const r = spawnSync('bash', ['-c', `cd "$1" && find . -printf '${FIND_FORMAT}' | sort | md5sum | cut -c1-32`, 'x', root], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function run(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** An ext4 image of a small tree, as a qcow2 base and an overlay snapshot on it: a qcow2 chain of two layers. */
function makeQcowChain(vm: string): void {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-takeover-tree-'));
  try {
    for (let d = 0; d < 20; d++) {
      fs.mkdirSync(path.join(tree, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 10; f++) fs.writeFileSync(path.join(tree, `d${d}`, `f${f}`), `file ${d}/${f}\n`.repeat(f * 300 + 1));
      fs.symlinkSync(`../d${(d + 1) % 20}/f1`, path.join(tree, `d${d}`, 'sub', 'link'));
    }
    run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-d', tree, path.join(vm, 'disk.img'), '16M']);
  } finally {
    fs.rmSync(tree, { recursive: true, force: true });
  }
  run('qemu-img', ['convert', '-O', 'qcow2', 'disk.img', 'base.qcow2'], vm);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'snap.qcow2'], vm);
}

/** A control socket (and state dir) of one test, and directories to mount on there. */
interface Place {
  socket: string;
  dir: string;
  mountpoint(n: string): string;
}

describe('agent takeover: mounts outlive their agent', { skip }, () => {
  let fx: StoreFixture;
  let work: string;
  let resolver: ResolverProcess;
  let kernelHash: string;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    const big = { entries: Array.from({ length: BIG }, (_, i) => ({ type: 'file' as const, path: `/big/entry-with-a-longish-name-${String(i).padStart(5, '0')}`, content: `${i}\n` })) };
    fx = await makeStore([...wideStack(200, 4), big], 'trusted', 'w');
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-takeover-'));
    const layersDir = path.join(fx.store, 'layers');
    const kernel = path.join(work, 'kernel');
    cleanups.push(await mountOverlay(layersDir, fx.rootsTopFirst.map((r) => path.relative(layersDir, r)), kernel));
    kernelHash = findHash(kernel);
    const vm = path.join(fx.store, 'vm');
    fs.mkdirSync(vm);
    makeQcowChain(vm);
    resolver = await startResolver({ store: fx.store });
    cleanups.push(() => resolver.stop('SIGKILL'));
    const env = { STRATA_RESOLVER: resolver.address };
    for (const args of [
      ['layer', 'create', '--source', 'qcow2:vm/base.qcow2', '--name', 'qbase'],
      ['layer', 'create', '--source', 'qcow2:vm/snap.qcow2', '--type', 'snapshot', '--base', 'qbase', '--name', 'qsnap'],
    ]) {
      const r = strata(args, env);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  after(async () => {
    // Every cleanup runs even when one before it fails: the kernel overlay (the first pushed, the last undone) must go.
    for (const c of cleanups.reverse()) await Promise.resolve().then(c).catch(() => undefined);
    if (work) fs.rmSync(work, { recursive: true, force: true });
    fx?.cleanup();
  });

  /** A control socket (and state dir) of its own, shared by the agents of one test; the holder on it is ended afterwards. */
  function place(name: string): Place {
    const dir = path.join(work, name);
    fs.mkdirSync(dir, { recursive: true });
    const socket = path.join(dir, 'agent.sock');
    // The holder of this socket: what it still holds is released, then it goes.
    cleanups.push(() => killHolder(socket));
    return {
      socket,
      dir,
      mountpoint: (n) => {
        const p = path.join(dir, n);
        fs.mkdirSync(p, { recursive: true });
        cleanups.push(() => forceUnmount(p));
        return p;
      },
    };
  }

  async function agentOn(socket: string, extra: string[] = []): Promise<AgentProcess> {
    const a = await startAgent({ resolver: resolver.address, socket, takeover: true, extra: ['--prefetch-entries', '0', '--data-cache-dir', path.join(path.dirname(socket), 'cache'), ...extra] });
    cleanups.push(() => a.stop('SIGKILL'));
    if (process.env.TAKEOVER_DEBUG) cleanups.push(() => fs.appendFileSync(process.env.TAKEOVER_DEBUG!, a.logs.map((l) => JSON.stringify(l)).join('\n') + '\n----\n'));
    return a;
  }

  /**
   * A place of its own, its mountpoints made (name: the layer mounted there through its first agent, in this
   * order, or null: left for the test), that agent started with `extra`.
   */
  async function mountedPlace(name: string, mountpoints: Record<string, string | null>, extra: string[] = []): Promise<{ p: Place; mnt: Record<string, string>; first: AgentProcess }> {
    const p = place(name);
    const mnt = Object.fromEntries(Object.keys(mountpoints).map((n) => [n, p.mountpoint(n)]));
    const first = await agentOn(p.socket, extra);
    for (const [n, layer] of Object.entries(mountpoints)) if (layer !== null) mount(first, layer, mnt[n]);
    return { p, mnt, first };
  }

  /** SIGKILL, and the exit awaited (bounded). */
  async function kill(a: AgentProcess): Promise<void> {
    a.child.kill('SIGKILL');
    await within('the killed agent to exit', a.exit);
  }

  /** strata mount through `a`; a failure says what the agent logged. */
  function mount(a: AgentProcess, layer: string, mountpoint: string): void {
    try {
      a.mount(layer, mountpoint);
    } catch (err) {
      throw new Error(`${String(err)}\nagent log:\n${a.logs.map((l) => JSON.stringify(l)).join('\n')}`, { cause: err });
    }
  }

  function events(a: AgentProcess, name: string): Record<string, unknown>[] {
    return a.logs.filter((l) => l.event === name);
  }

  function isStrataMount(mountpoint: string): boolean {
    return fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === mountpoint && l.includes(' - fuse.strata '));
  }

  /** Readers on both mounts, their first passes done; and the hashes every later pass must give. */
  async function readers(dirMnt: string, qMnt: string, stopFile: string): Promise<{ loops: Loop[]; expected: Map<Loop, string> }> {
    const loops = [new Loop('find-dir', 'find', dirMnt, stopFile), new Loop('find-qcow2', 'find', qMnt, stopFile), new Loop('sum-dir', 'sum', dirMnt, stopFile), new Loop('sum-qcow2', 'sum', qMnt, stopFile)];
    cleanups.push(() => loops.forEach((l) => l.kill()));
    await Promise.all(loops.map((l) => l.more(1)));
    const expected = new Map(loops.map((l) => [l, l.passes[0].hash!] as const));
    assert.equal(loops[0].passes[0].hash, kernelHash, 'the dir: chain through the agent is the kernel overlay of its layers');
    for (const l of loops) assert.ok(l.passes[0].ok, `${l.name}: ${l.passes[0].err}`);
    return { loops, expected };
  }

  /** Every pass of every reader succeeded with its first pass's output; the longest single operation, ms. */
  async function finish(loops: Loop[], expected: Map<Loop, string>, stopFile: string): Promise<number> {
    fs.writeFileSync(stopFile, '');
    await Promise.all(loops.map((l) => l.stop()));
    if (process.env.TAKEOVER_DEBUG) for (const l of loops) fs.appendFileSync(process.env.TAKEOVER_DEBUG, `${l.name}: ${l.passes.map((x) => `${x.ok ? 'ok' : x.err}@${x.at % 100000}`).join(' ')}\n`);
    let stall = 0;
    for (const l of loops) {
      const failed = l.passes.filter((p) => !p.ok);
      assert.deepEqual(failed, [], `${l.name}: failed passes`);
      for (const p of l.passes) assert.equal(p.hash, expected.get(l), `${l.name}: a pass gave other output`);
      for (const p of l.passes) stall = Math.max(stall, p.maxOp ?? 0);
    }
    return stall;
  }

  /** The time from `t0` until a request only an agent can answer (a READDIR of a directory no reader lists) is answered. */
  async function firstServed(dirMnt: string, t0: number): Promise<number> {
    await within('a listing after the kill', fs.promises.readdir(path.join(dirMnt, 'tree')), 60_000);
    return Date.now() - t0;
  }

  test('SIGKILL mid-read: a new agent takes both mounts over; zero failed operations, identical output, open files and a listing go on', async () => {
    const { p, mnt, first } = await mountedPlace('kill', { dir: 'w3', qcow2: 'qsnap' });
    const { dir: dirMnt, qcow2: qMnt } = mnt;
    const stopFile = path.join(p.dir, 'stop');
    const { loops, expected } = await readers(dirMnt, qMnt, stopFile);
    // A file held open, and a listing half read (several getdents buffers: the rest is read from the next agent).
    const held = fs.openSync(path.join(qMnt, 'd3/f7'), 'r');
    const heldBefore = fs.readFileSync(path.join(qMnt, 'd3/f7'));
    const listing = fs.opendirSync(path.join(dirMnt, 'big'), { bufferSize: 1 });
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) seen.push(listing.readSync()!.name);

    await kill(first);
    const killedAt = Date.now();
    if (process.env.TAKEOVER_DEBUG) fs.appendFileSync(process.env.TAKEOVER_DEBUG, `killed at ${killedAt % 100000}\n`);
    const served = firstServed(dirMnt, killedAt);
    const second = await agentOn(p.socket);
    const takeoverMs = await served;
    assert.equal(events(second, 'agent.mount_taken_over').length, 2, JSON.stringify(second.logs.filter((l) => String(l.event).startsWith('agent.'))));
    assert.equal(events(second, 'agent.stale_mount_cleared').length, 0);
    assert.equal(events(second, 'agent.mount_restored').length, 0, 'taken over, not mounted again');
    await Promise.all(loops.map((l) => l.more(2)));

    const buf = Buffer.alloc(heldBefore.length + 10);
    assert.equal(fs.readSync(held, buf, 0, buf.length, 0), heldBefore.length);
    assert.deepEqual(buf.subarray(0, heldBefore.length), heldBefore, 'a file opened under the old agent reads the same under the new one');
    fs.closeSync(held);
    for (let e = listing.readSync(); e; e = listing.readSync()) seen.push(e.name);
    listing.closeSync();
    assert.equal(seen.length, BIG, 'the listing begun under the old agent ends under the new one, nothing lost or repeated');
    assert.equal(new Set(seen).size, BIG);

    const stall = await finish(loops, expected, stopFile);
    const passes = loops.reduce((n, l) => n + l.passes.length, 0);
    process.stdout.write(`# takeover after SIGKILL: first request served ${takeoverMs} ms after the kill; readers' longest stall ${Math.round(stall)} ms over ${passes} passes\n`);
    // The mounts are the second agent's: listed, and a real unmount works.
    const listed = JSON.parse(strata(['mounts', '--json', '--socket', p.socket]).stdout) as { mounts: { mountpoint: string }[] };
    assert.deepEqual(listed.mounts.map((m) => m.mountpoint).sort(), [dirMnt, qMnt].sort());
    second.umount(qMnt);
    assert.equal(isStrataMount(qMnt), false);
    assert.equal(findHash(dirMnt), kernelHash);
  });

  test('SIGTERM and start, five times in a row (an upgrade): nothing unmounted, no failed operation', async () => {
    const { p, mnt, first } = await mountedPlace('term', { dir: 'w3', qcow2: 'qsnap' });
    const { dir: dirMnt, qcow2: qMnt } = mnt;
    const stopFile = path.join(p.dir, 'stop');
    let agent = first;
    // What the node journal costs: a cold find (every ino new, each on file before its answer).
    const coldStart = performance.now();
    assert.equal(findHash(dirMnt), kernelHash);
    const coldMs = performance.now() - coldStart;
    const { loops, expected } = await readers(dirMnt, qMnt, stopFile);
    const times: number[] = [];
    for (let round = 0; round < 5; round++) {
      assert.equal(await agent.stop('SIGTERM'), 0);
      assert.equal(events(agent, 'agent.handed_over').length, 1);
      if (round === 0) {
        const j = events(agent, 'agent.stopped')[0].nodeJournal as { writes: number; bytes: number; appendMs: number };
        assert.ok(j.writes > 100, `${j.writes} journal writes`);
        process.stdout.write(`# node journal: ${j.writes} writes (${j.bytes} bytes), ${j.appendMs} ms in write(2) in all, over a cold find of ${Math.round(coldMs)} ms and the readers' first passes\n`);
      }
      assert.ok(isStrataMount(dirMnt) && isStrataMount(qMnt), 'nothing unmounted at SIGTERM');
      const t0 = Date.now();
      const served = firstServed(dirMnt, t0);
      agent = await agentOn(p.socket);
      times.push(await served);
      assert.equal(events(agent, 'agent.mount_taken_over').length, 2, `round ${round}`);
      await Promise.all(loops.map((l) => l.more(1)));
    }
    const stall = await finish(loops, expected, stopFile);
    process.stdout.write(`# SIGTERM + start x5: first request served ${times.join(', ')} ms after the stop; readers' longest stall ${Math.round(stall)} ms\n`);
  });

  test('a foreign or damaged state is refused with a log line: the mount is cleared as before and mounted again from the desired state', async () => {
    const { p, mnt, first } = await mountedPlace('foreign', { dir: 'w3', qcow2: 'qsnap', session: 'w3', journal: 'w3' });
    const { dir: dirMnt, qcow2: qMnt, session: sessionMnt, journal: journalMnt } = mnt;
    const qHash = findHash(qMnt);
    await kill(first);
    const state = `${p.socket}.state`;
    const records = fs.readdirSync(state).filter((f) => f.endsWith('.mount.json'));
    assert.equal(records.length, 4);
    for (const f of records) {
      const file = path.join(state, f);
      const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { mountpoint: string; version: number; handover: Record<string, unknown>; nodes: string };
      // A build of another version wrote one record, another's session state, one record is damaged, one node journal too.
      if (r.mountpoint === dirMnt) fs.writeFileSync(file, JSON.stringify({ ...r, version: 99 }));
      else if (r.mountpoint === qMnt) fs.writeFileSync(file, '{"format":"strata-agent-mount","version":1,"id":');
      else if (r.mountpoint === sessionMnt) fs.writeFileSync(file, JSON.stringify({ ...r, handover: { ...r.handover, version: 2 } }));
      else fs.writeFileSync(r.nodes, 'strata-nodes 1\n+ 2 /not-json\n');
    }
    const second = await agentOn(p.socket);
    const refused = events(second, 'agent.takeover_refused');
    assert.equal(refused.length, 4, JSON.stringify(refused));
    const why = new Map(refused.map((l) => [l.mountpoint ?? 'unknown', String(l.err)]));
    assert.match(why.get(dirMnt)!, /version 99; this agent reads version 1/);
    assert.match(why.get(sessionMnt)!, /version/);
    assert.match(why.get(journalMnt)!, /node journal .*line 2/);
    assert.match(why.get('unknown') ?? why.get(qMnt)!, /not JSON|no readable record/);
    assert.equal(events(second, 'agent.mount_taken_over').length, 0);
    assert.deepEqual(events(second, 'agent.mount_restored').map((l) => l.mountpoint).sort(), [dirMnt, qMnt, sessionMnt, journalMnt].sort());
    assert.equal(findHash(dirMnt), kernelHash);
    assert.equal(findHash(qMnt), qHash);
    assert.equal(findHash(sessionMnt), kernelHash);
    assert.equal(findHash(journalMnt), kernelHash);
  });

  test('SIGSTOP: a reader gets EIO within the bound (--request-timeout 2), a --hard mount waits; SIGCONT: both serve again', async () => {
    const { p, mnt, first: agent } = await mountedPlace('stop', { dir: 'w3', hard: null }, ['--request-timeout', '2']);
    const { dir: dirMnt, hard: hardMnt } = mnt;
    const hard = strata(['mount', 'w3', hardMnt, '--hard', '--socket', p.socket, '--json']);
    assert.equal(hard.status, 0, hard.stderr);
    assert.equal((JSON.parse(hard.stdout) as { hard?: boolean }).hard, true);
    assert.equal(fs.readdirSync(path.join(dirMnt, 'tree')).length, 200);
    assert.equal(fs.readdirSync(path.join(hardMnt, 'tree')).length, 200);
    const list = (dir: string): { done: Promise<{ code: number | null; stderr: string; ms: number }>; running(): boolean } => {
      const t0 = Date.now();
      const ls = spawn('ls', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      cleanups.push(() => ls.kill('SIGKILL'));
      let stderr = '';
      ls.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      return {
        done: new Promise((resolve) => ls.on('close', (code) => resolve({ code, stderr, ms: Date.now() - t0 }))),
        running: () => ls.exitCode === null && ls.signalCode === null,
      };
    };
    agent.child.kill('SIGSTOP');
    cleanups.push(() => agent.child.kill('SIGCONT'));
    let hardList: ReturnType<typeof list>;
    try {
      hardList = list(path.join(hardMnt, 'tree/d0007'));
      const r = await within('a listing of the stopped agent to end', list(path.join(dirMnt, 'tree/d0007')).done, 30_000);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.ok(r.ms < 8_000, `EIO after ${r.ms} ms (bound 2 s)`);
      process.stdout.write(`# SIGSTOP: EIO after ${r.ms} ms with --request-timeout 2\n`);
      // Past the bound, the hard mount's reader still waits.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.ok(hardList.running(), 'a --hard mount waits for its agent');
    } finally {
      agent.child.kill('SIGCONT');
    }
    const h = await within('the hard mount\'s listing after SIGCONT', hardList.done, 30_000);
    assert.equal(h.code, 0, h.stderr);
    const back = await waitFor(
      'the mount to serve again after SIGCONT',
      () => {
        try {
          return fs.readdirSync(path.join(dirMnt, 'tree/d0007'));
        } catch {
          return undefined;
        }
      },
      20_000,
    );
    assert.equal(back.length, 5);
    assert.equal(findHash(dirMnt), kernelHash);
  });

  test('--no-takeover: what the dead agent left is cleared, what strata mount made is mounted again; at stop it unmounts', async () => {
    const { p, mnt, first } = await mountedPlace('restore', { dir: 'w3' });
    const dirMnt = mnt.dir;
    await kill(first);
    const second = await agentOn(p.socket, ['--no-takeover']);
    assert.equal(events(second, 'agent.mount_taken_over').length, 0);
    assert.equal(events(second, 'agent.stale_mount_cleared').length, 1);
    assert.deepEqual(events(second, 'agent.mount_restored').map((l) => l.mountpoint), [dirMnt]);
    assert.equal(findHash(dirMnt), kernelHash);
    assert.equal(await second.stop('SIGTERM'), 0);
    assert.equal(isStrataMount(dirMnt), false, '--no-takeover unmounts at stop');
    // Still desired: the next agent (a reboot) mounts it again; strata umount forgets it.
    const third = await agentOn(p.socket);
    assert.deepEqual(events(third, 'agent.mount_restored').map((l) => l.mountpoint), [dirMnt]);
    third.umount(dirMnt);
    assert.equal(await third.stop('SIGTERM'), 0);
    const fourth = await agentOn(p.socket);
    assert.equal(events(fourth, 'agent.mount_restored').length, 0, 'unmounted with strata umount: not mounted again');
  });

  test('strata umount with no agent: the mount its fd holder keeps is detached, and the next agent does not mount it again', async () => {
    const { p, mnt, first } = await mountedPlace('orphan', { dir: 'w3' });
    const dirMnt = mnt.dir;
    await kill(first);
    assert.ok(isStrataMount(dirMnt), 'held, not dead');
    const r = strata(['umount', dirMnt, '--socket', p.socket]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /no agent was running: detached/);
    assert.equal(isStrataMount(dirMnt), false);
    const next = await agentOn(p.socket);
    assert.equal(events(next, 'agent.mount_taken_over').length, 0);
    assert.equal(events(next, 'agent.mount_restored').length, 0);
    assert.equal(isStrataMount(dirMnt), false);
  });

  test("systemd's fd store: with the holder gone too, an agent given LISTEN_FDS takes the mount over", async () => {
    const p = place('fdstore');
    const dirMnt = p.mountpoint('dir');
    // The service manager's side, as sd_notify(3) speaks to it: a datagram socket that keeps what FDSTORE=1 sends.
    const notifyPath = path.join(p.dir, 'notify.sock');
    const notify = bindDatagram(notifyPath);
    const stored = new Map<string, number[]>();
    let listening = true;
    const receiving = (async () => {
      while (listening) {
        const packet = await receivePacket(notify, { timeoutMs: 200 }).catch(() => undefined);
        if (!packet) continue;
        const fields = new Map(packet.bytes.toString('utf8').split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
        if (fields.get('FDSTORE') === '1') stored.set(fields.get('FDNAME')!, [...(stored.get(fields.get('FDNAME')!) ?? []), ...packet.fds]);
        else for (const fd of packet.fds) closeFd(fd);
      }
    })();
    cleanups.push(async () => {
      listening = false;
      await receiving;
      closeFd(notify);
      for (const fds of stored.values()) for (const fd of fds) closeFd(fd);
    });
    const first = await startAgent({ resolver: resolver.address, socket: p.socket, takeover: true, env: { NOTIFY_SOCKET: notifyPath }, extra: ['--prefetch-entries', '0', '--data-cache-dir', path.join(p.dir, 'cache')] });
    cleanups.push(() => first.stop('SIGKILL'));
    mount(first, 'w3', dirMnt);
    await waitFor('the mount in the fd store', () => stored.size > 0 || undefined);
    assert.equal(findHash(dirMnt), kernelHash);
    // The agent and its holder die; only "systemd" still has the mount's descriptors.
    await kill(first);
    const holderSock = path.join(`${p.socket}.state`, 'holder.sock');
    const c = await HolderClient.connect(holderSock, { timeoutMs: 2000 });
    const { pid: holderPid } = await c.status();
    c.close();
    process.kill(holderPid, 'SIGKILL');
    await waitFor('the holder to die', () => {
      try {
        process.kill(holderPid, 0);
        return undefined;
      } catch {
        return true;
      }
    });
    const [[id, fds]] = [...stored];
    // As systemd starts the unit again: the stored fds from 3 on, LISTEN_PID the agent's own (exec keeps the shell's pid).
    const args = ['agent', '--resolver', resolver.address, '--socket', p.socket, '--prefetch-entries', '0', '--data-cache-dir', path.join(p.dir, 'cache')];
    const child = spawn('sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, STRATA_BIN, ...args], {
      stdio: ['ignore', 'ignore', 'pipe', ...fds],
      env: { ...process.env, LISTEN_FDS: String(fds.length), LISTEN_FDNAMES: fds.map(() => id).join(':'), NOTIFY_SOCKET: notifyPath, STRATA_LOG_LEVEL: 'debug' },
    });
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    const logs: Record<string, unknown>[] = [];
    let rest = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop()!;
      for (const l of lines) if (l.startsWith('{')) logs.push(JSON.parse(l) as Record<string, unknown>);
    });
    await waitFor('the agent given LISTEN_FDS to be ready', () => logs.some((l) => l.event === 'agent.ready') || undefined, 20_000);
    assert.equal(logs.filter((l) => l.event === 'agent.mount_taken_over').length, 1, JSON.stringify(logs.filter((l) => l.level !== 'debug')));
    assert.equal(findHash(dirMnt), kernelHash);
    assert.equal(fs.readdirSync(path.join(dirMnt, 'tree/d0043')).length, 5);
  });

  test('agent and holder both lost: the dead mount where a desired mount goes is cleared and mounted again', async () => {
    const { p, mnt, first } = await mountedPlace('lost', { dir: 'w3' });
    const dirMnt = mnt.dir;
    await kill(first);
    const c = await HolderClient.connect(path.join(`${p.socket}.state`, 'holder.sock'), { timeoutMs: 2000 });
    const { pid } = await c.status();
    c.close();
    process.kill(pid, 'SIGKILL');
    await waitFor('the mount to be dead', () => {
      try {
        fs.readdirSync(dirMnt);
        return undefined;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ENOTCONN' || undefined;
      }
    });
    // As if the agent had died before it listed the mount as its own.
    fs.rmSync(`${p.socket}.mounts.json`);
    const second = await agentOn(p.socket);
    assert.ok(events(second, 'agent.stale_mount_cleared').some((l) => l.mountpoint === dirMnt && l.reason === 'desired'), JSON.stringify(second.logs.filter((l) => l.level !== 'debug')));
    assert.deepEqual(events(second, 'agent.mount_restored').map((l) => l.mountpoint), [dirMnt]);
    assert.equal(findHash(dirMnt), kernelHash);
  });
});
