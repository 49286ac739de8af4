import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Server, ServerCredentials, type ServerWritableStream } from '@grpc/grpc-js';
import { isMountOption } from '@strata/layers';
import { DiffServiceService, ProjectionServiceService, type DiffRequest, type DiffResponse, type WalkRequest, type WalkResponse } from '@strata/protocol';
import { STRATA_BIN, freePort, startResolver, strata, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

// What a user sees when something is wrong, byte for byte: one line on stderr, the documented exit status.

const MANY = 6000;

let fx: StoreFixture;
let resolver: ResolverProcess;
let env: Record<string, string>;
let tmp: string;
const closers: (() => void)[] = [];

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI without blocking this process (the peers it talks to in these tests live here). */
function run(args: string[], extraEnv: Record<string, string> = env, file = process.execPath, argv = [STRATA_BIN, ...args]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

/** Exactly `line` on stderr (one line, no stack), nothing on stdout, exit status 1. */
function failsWith(r: Run, line: string | RegExp, what: string): void {
  assert.equal(r.status, 1, `${what}: status ${r.status}, stderr ${r.stderr}`);
  assert.equal(r.stdout, '', what);
  assert.match(r.stderr, /^strata: [^\n]*\n$/, `${what}: one line: ${JSON.stringify(r.stderr)}`);
  if (typeof line === 'string') assert.equal(r.stderr, `strata: ${line}\n`, what);
  else assert.match(r.stderr.trimEnd(), line, what);
}

async function listen(server: net.Server): Promise<string> {
  const sockets: net.Socket[] = [];
  server.on('connection', (s: net.Socket) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-honest-'));
  fx = await makeStore([
    { entries: [{ type: 'file', path: '/etc/hostname', content: 'base\n' }, { type: 'file', path: '/big', size: 4 << 20 }] },
    { entries: Array.from({ length: MANY }, (_, i) => ({ type: 'file' as const, path: `/many/file-${String(i).padStart(5, '0')}`, content: 'x' })) },
  ]);
  resolver = await startResolver({ store: fx.store });
  env = { STRATA_RESOLVER: resolver.address };
});

after(async () => {
  for (const close of closers) close();
  await resolver?.stop();
  fx?.cleanup();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a resolver that cannot be reached is said in one line', () => {
  test('nothing listening: connection refused, for calls and streams', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    for (const args of [['stat', 'l1', '/'], ['layer', 'list'], ['cat', 'l0', '/etc/hostname'], ['walk', 'l1'], ['diff', 'l0', 'l1']]) {
      failsWith(await run(args, { STRATA_RESOLVER: dead }), `no resolver answers at ${dead} (connection refused)`, args.join(' '));
    }
    const dead2 = `127.0.0.1:${await freePort()}`;
    failsWith(await run(['layer', 'list', '--resolver', `${dead},${dead2}`]), `no resolver answers at ${dead}, ${dead2} (connection refused)`, 'two dead');
  });

  test('a host name that does not resolve', async () => {
    failsWith(await run(['stat', 'l1', '/', '--resolver', 'nosuchhost.invalid:7400']), 'cannot resolve host nosuchhost.invalid (resolver address nosuchhost.invalid:7400)', 'dns');
  });

  test('a peer that never answers: a timeout after --timeout, for calls and streams', async () => {
    const silent = await listen(net.createServer(() => undefined));
    for (const args of [['stat', 'l1', '/'], ['walk', 'l1']]) {
      const started = Date.now();
      failsWith(await run([...args, '--resolver', silent, '--timeout', '1']), `no answer from ${silent} within 1 s`, args.join(' '));
      assert.ok(Date.now() - started < 8_000, `${args.join(' ')} gave up in time`);
    }
  });

  test('a peer that is not a gRPC server', async () => {
    const web = await listen(http.createServer((_req, res) => res.end('hello')));
    failsWith(await run(['layer', 'list', '--resolver', web]), `${web} is not a gRPC server (it does not speak HTTP/2)`, 'http/1');
  });

  test('a bad --resolver or $STRATA_RESOLVER is refused before any connection', async () => {
    const cases: [string, string][] = [
      ['garbage', "--resolver 'garbage': expected host:port (the port is missing)"],
      ['http://127.0.0.1:7400', "--resolver 'http://127.0.0.1:7400': expected host:port (no scheme)"],
      ['127.0.0.1:99999', "--resolver '127.0.0.1:99999': port 99999 is out of range (1-65535)"],
      [`${resolver.address},,`, `--resolver '${resolver.address},,': entry 2 of 3 is empty`],
      [`${resolver.address},http://x:1`, "--resolver 'http://x:1': expected host:port (no scheme)"],
      ['', "--resolver '': no address given"],
    ];
    for (const [value, line] of cases) failsWith(await run(['stat', 'l1', '/', '--resolver', value]), line, value);
    failsWith(await run(['layer', 'list'], { STRATA_RESOLVER: 'localhost:7400/' }), "$STRATA_RESOLVER 'localhost:7400/': expected host:port (no path)", 'env');
    // Bad arguments of any kind: the same one line and status.
    failsWith(await run(['layer', 'create', '--source', 'dir:x', '--type', 'weird']), /^strata: option '--type <t>' argument 'weird' is invalid\. expected one of .* \(--help shows the usage\)$/, '--type');
  });
});

describe('strata mount checks the mountpoint before asking the agent', () => {
  test('missing, not a directory, not empty', async () => {
    const socket = path.join(tmp, 'no-agent.sock');
    fs.mkdirSync(path.join(tmp, 'full'));
    fs.writeFileSync(path.join(tmp, 'full/x'), '');
    fs.writeFileSync(path.join(tmp, 'file'), '');
    fs.mkdirSync(path.join(tmp, 'empty'));
    const mount = (dir: string): Promise<Run> => run(['mount', 'l1', dir, '--socket', socket]);
    const dir = (name: string): string => path.join(tmp, name);
    failsWith(await mount(dir('missing')), `mountpoint ${dir('missing')} does not exist`, 'missing');
    failsWith(await mount(dir('file')), `mountpoint ${dir('file')} is not a directory`, 'file');
    failsWith(await mount(dir('file/sub')), `mountpoint ${dir('file/sub')} is not a directory (a part of its path is a file)`, 'under a file');
    failsWith(await mount(dir('full')), `mountpoint ${dir('full')} is not empty`, 'full');
    // An empty directory passes: what fails next is the missing agent.
    failsWith(await mount(dir('empty')), /no agent is listening/, 'empty');
  });
});

describe('output into a closed pipe ends quietly', () => {
  const intoHead = (args: string[]): ReturnType<typeof spawnSync> =>
    spawnSync('bash', ['-c', '"$0" "$@" | head -c 10 >/dev/null; exit "${PIPESTATUS[0]}"', process.execPath, STRATA_BIN, ...args], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });

  test('cat, ls, walk, diff | head -c 10: status 0, nothing on stderr', () => {
    for (const args of [['cat', 'l0', '/big'], ['ls', 'l1', '/many'], ['walk', 'l1'], ['diff', 'l0', 'l1'], ['walk', 'l1', '--json']]) {
      const r = intoHead(args);
      assert.equal(r.stderr, '', args.join(' '));
      assert.equal(r.status, 0, args.join(' '));
    }
  });

  test('the same commands write everything to a reader that stays', () => {
    assert.equal(strata(['cat', 'l0', '/big'], env).raw.length, 4 << 20);
    assert.equal(strata(['ls', 'l1', '/many'], env).stdout.split('\n').length - 1, MANY);
    assert.equal(strata(['diff', 'l0', 'l1'], env).stdout.split('\n').length - 1, MANY + 1);
    const walked = strata(['walk', 'l1', '/many'], env).stdout.split('\n');
    assert.equal(walked.length - 1, MANY + 1);
    assert.match(walked[1], / \/many\/file-00000$/);
  });
});

describe('layer update and the layer tables', () => {
  test('an update that changes nothing keeps the generation and says so; a change bumps it', async () => {
    const created = JSON.parse((await run(['layer', 'create', '--source', 'dir:layers/0', '--name', 'upd', '--json'])).stdout) as { layerId: number };
    const id = created.layerId;
    const text = async (args: string[]): Promise<string> => {
      const r = await run(args);
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    const generation = async (): Promise<number> => (JSON.parse(await text(['layer', 'get', 'upd', '--json'])) as { generation: number }).generation;
    assert.equal(await text(['layer', 'update', 'upd']), `layer ${id} unchanged (generation 1): nothing to change\n`);
    assert.equal(await text(['layer', 'update', 'upd', '--name', 'upd', '--option', 'read-only', '--path', '/']), `layer ${id} unchanged (generation 1): it already has these values\n`);
    const same = JSON.parse(await text(['layer', 'update', 'upd', '--name', 'upd', '--json'])) as { generation: number; name: string };
    assert.deepEqual([same.name, same.generation], ['upd', 1], 'the JSON is still the layer');
    assert.equal(await generation(), 1);
    assert.equal(await text(['layer', 'update', 'upd', '--option', 'no-exec']), `updated layer ${id} (generation 2)\n`);
    assert.equal(await text(['layer', 'update', 'upd', '--option', 'no-exec']), `layer ${id} unchanged (generation 2): it already has these values\n`);
    assert.equal(await generation(), 2);
    await text(['layer', 'delete', 'upd']);
  });

  test('text and JSON name the same mount options, the names --option takes', async () => {
    const r = await run(['layer', 'create', '--source', 'dir:layers/0', '--name', 'opts', '--option', 'no-dev', '--option', 'no-exec']);
    assert.equal(r.status, 0, r.stderr);
    try {
      const layers = (JSON.parse((await run(['layer', 'list', '--json'])).stdout) as { layers: { name: string; mountOptions: string[] }[] }).layers;
      const table = (await run(['layer', 'list'])).stdout.split('\n');
      const header = table[0].split(/\s+/);
      const col = header.indexOf('OPTIONS');
      assert.ok(col > 0, table[0]);
      for (const l of layers) {
        const row = table.find((line) => line.split(/\s+/)[header.indexOf('NAME')] === l.name);
        assert.ok(row, l.name);
        const shown = row.split(/\s+/)[col];
        assert.equal(shown, l.mountOptions.join(','), l.name);
        assert.ok(shown.split(',').every(isMountOption), shown);
      }
      assert.deepEqual(layers.find((l) => l.name === 'opts')?.mountOptions, ['read-only', 'no-exec', 'no-dev']);
      const get = (await run(['layer', 'get', 'opts'])).stdout;
      assert.match(get, /read-only,no-exec,no-dev/);
    } finally {
      await run(['layer', 'delete', 'opts']);
    }
  });
});

/** A stand-in resolver whose Walk and Diff take their time: two batches 400 ms apart. */
async function slowResolver(): Promise<string> {
  const s = new Server();
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const attr = { ino: 1, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 1, blocks: 0, blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
  s.addService(ProjectionServiceService, {
    walk: async (call: ServerWritableStream<WalkRequest, WalkResponse>) => {
      for (const batch of [['/a', '/b'], ['/c']]) {
        call.write({ entries: batch.map((p) => ({ path: Buffer.from(p), attr, linkTarget: Buffer.alloc(0) })) });
        await pause(400);
      }
      call.end();
    },
  });
  s.addService(DiffServiceService, {
    diff: async (call: ServerWritableStream<DiffRequest, DiffResponse>) => {
      await pause(400);
      call.write({ changes: [{ path: Buffer.from('/a'), kind: 1, before: undefined, after: attr }] });
      await pause(400);
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  closers.push(() => s.forceShutdown());
  return `127.0.0.1:${port}`;
}

const HAVE_SCRIPT = spawnSync('sh', ['-c', 'command -v script'], { encoding: 'utf8' }).status === 0;
const PROGRESS_BYTES = new RegExp(String.raw`\r|\x1b\[`);

describe('progress on stderr, only on a terminal', () => {
  let slow: string;
  before(async () => {
    slow = await slowResolver();
  });

  test('stderr not a terminal: not one progress byte, text or JSON', async () => {
    for (const args of [['walk', 'x'], ['diff', 'x', 'y'], ['walk', 'x', '--json'], ['diff', 'x', 'y', '--json']]) {
      const r = await run([...args, '--resolver', slow]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', args.join(' '));
      assert.doesNotMatch(r.stdout, PROGRESS_BYTES);
    }
    // A real resolver and a big tree: the same.
    const big = await run(['walk', 'l1']);
    assert.deepEqual([big.status, big.stderr], [0, '']);
  });

  /** The command in a pseudo-terminal (util-linux `script`), stdout to a file: what the terminal shows is stderr. */
  async function onTerminal(args: string[]): Promise<{ screen: string; stdout: string }> {
    const outFile = path.join(tmp, `out-${args.join('-').replace(/\W/g, '')}`);
    const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
    const cmd = [process.execPath, STRATA_BIN, ...args, '--resolver', slow].map(quote).join(' ');
    const r = await run([], {}, 'script', ['-qfec', `${cmd} > ${quote(outFile)}`, '/dev/null']);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return { screen: r.stdout, stdout: fs.readFileSync(outFile, 'utf8') };
  }

  test('stderr a terminal: entries so far and elapsed time, erased at the end; --no-progress: none', { skip: HAVE_SCRIPT ? false : 'no util-linux script' }, async () => {
    const w = await onTerminal(['walk', 'x']);
    assert.match(w.screen, /walk: [23] entries, 0\.\d s/);
    assert.ok(w.screen.endsWith('\r\x1b[K'), JSON.stringify(w.screen));
    assert.equal(w.stdout.split('\n').length - 1, 3);
    assert.doesNotMatch(w.stdout, PROGRESS_BYTES);
    const d = await onTerminal(['diff', 'x', 'y', '--json']);
    assert.match(d.screen, /diff: [01] changes?, 0\.\d s/);
    assert.ok(d.screen.endsWith('\r\x1b[K'), JSON.stringify(d.screen));
    assert.equal((JSON.parse(d.stdout) as { changes: unknown[] }).changes.length, 1);
    // Frames come at most ~10 a second.
    const frames = (w.screen.match(/walk: /g) ?? []).length;
    assert.ok(frames <= 12, `${frames} frames in about a second`);
    const quiet = await onTerminal(['walk', 'x', '--no-progress']);
    assert.equal(quiet.screen, '');
  });
});
