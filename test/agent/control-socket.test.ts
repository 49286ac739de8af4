import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { readableCheckout, strata, type ReadableCheckout } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { auditLines } from '../support/audit-lines';
import { exitWithin, firstOutput, within } from '../support/bounded';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * A local user as an attacker of the agent's control socket: garbage, a
 * line longer than any request, a line never finished, a pile of idle
 * connections. Each is answered and dropped; meanwhile every other client
 * is served at once.
 */

const skip = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v setpriv']).status === 0 ? false : 'needs root and setpriv';
/** CONTROL_LIMITS in services/agent/src/control/control-server.ts. */
const REQUEST_TIMEOUT_MS = 5_000;
const MAX_CONNECTIONS_PER_USER = 16;

interface Exchange {
  /** What the agent wrote before closing. */
  answer: string;
  closedAfterMs: number;
}

/** Connects, sends `send` (nothing when undefined), and waits (bounded) for the agent to close the connection. */
function exchange(socket: string, send: string | Buffer | undefined): Promise<Exchange> {
  let s: net.Socket | undefined;
  const done = new Promise<Exchange>((resolve, reject) => {
    const started = Date.now();
    const c = (s = net.connect(socket));
    let answer = '';
    c.setEncoding('utf8');
    c.on('connect', () => {
      if (send !== undefined) c.write(send);
    });
    c.on('data', (d: string) => (answer += d));
    c.on('error', (err) => (answer === '' ? reject(err) : undefined));
    c.on('close', () => resolve({ answer, closedAfterMs: Date.now() - started }));
  });
  // The agent drops a silent client after REQUEST_TIMEOUT_MS: three times that is a hang.
  return within(`the agent to answer and close a connection that sent ${send === undefined ? 'nothing' : `${Buffer.byteLength(send)} bytes`}`, done, 3 * REQUEST_TIMEOUT_MS).finally(() => s?.destroy());
}

function parsed(answer: string): { ok: boolean; error?: { errno: string; message: string } } {
  const line = answer.split('\n')[0];
  return JSON.parse(line) as { ok: boolean; error?: { errno: string; message: string } };
}


describe('the control socket under a hostile local client', { skip }, () => {
  let fx: StoreFixture;
  let rig: StoreAndAgents | undefined;
  let socket: string;
  let readable: ReadableCheckout;

  before(async () => {
    // nobody's script below requires a package of this checkout, wherever the checkout is.
    readable = readableCheckout();
    fx = await makeStore([{ entries: [{ type: 'file', path: '/a', content: 'a\n' }] }]);
    rig = await startStoreAndAgents({ prefix: 'control', store: fx.store });
    fs.chmodSync(rig.work, 0o755);
    socket = path.join(rig.work, 'run', 'agent.sock');
    await rig.startAgent({ socket, extra: ['--socket-group', 'nogroup', '--prefetch-entries', '0'] });
  });

  after(async () => {
    await rig?.close();
    fx?.cleanup();
    readable?.remove();
  });

  const served = (): void => {
    const r = strata(['mounts', '--json', '--socket', socket]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { mounts: [] });
  };

  test('garbage, a huge line and a line never finished are answered and dropped; others are served meanwhile', async () => {
    const idle = exchange(socket, undefined);
    const unfinished = exchange(socket, '{"op":"mounts"');
    const garbage = await exchange(socket, Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x0a]));
    assert.equal(parsed(garbage.answer).error?.errno, 'EINVAL');
    assert.match(parsed(garbage.answer).error?.message ?? '', /not JSON/);
    const wrong = await exchange(socket, '{"op":"format-disk"}\n');
    assert.match(parsed(wrong.answer).error?.message ?? '', /unknown op "format-disk"/);
    const huge = await exchange(socket, Buffer.alloc(1 << 20, 0x61));
    assert.equal(parsed(huge.answer).error?.errno, 'EINVAL');
    assert.match(parsed(huge.answer).error?.message ?? '', /too large/);
    // The stuck ones are still open: the agent answers everyone else.
    served();
    served();
    const [i, u] = await Promise.all([idle, unfinished]);
    for (const x of [i, u]) {
      assert.equal(parsed(x.answer).error?.errno, 'ETIMEDOUT');
      assert.ok(x.closedAfterMs >= REQUEST_TIMEOUT_MS - 100, `closed after ${x.closedAfterMs} ms`);
    }
    // The refusal is answered first and written to the audit log after: wait for the lines.
    const want = ['malformed request', 'request too large', 'request timed out'];
    const deniedNow = () => auditLines(`${socket}.audit.log`).filter((l) => l.event === 'control.denied');
    for (let i = 0; i < 100 && !want.every((r) => deniedNow().some((l) => l.reason === r)); i++) await new Promise((r) => setTimeout(r, 50));
    const denied = deniedNow();
    const reasons = new Set(denied.map((l) => l.reason));
    for (const r of want) assert.ok(reasons.has(r), `${r} in ${[...reasons].join(', ')}`);
    for (const l of denied) assert.equal((l.detail as { uid: number }).uid, 0);
  });

  test(`a user holding ${MAX_CONNECTIONS_PER_USER} idle connections gets EAGAIN for the next; root is still served`, async () => {
    const lib = readable.at('libs/agent-control/dist/index.js');
    // nobody opens the limit's worth of silent connections, then asks once more and prints the answer.
    const script = `
      const net = require('net');
      const held = [];
      let open = 0;
      for (let i = 0; i < ${MAX_CONNECTIONS_PER_USER}; i++) {
        const s = net.connect(${JSON.stringify(socket)});
        s.on('connect', () => { if (++open === ${MAX_CONNECTIONS_PER_USER}) next(); });
        s.on('error', () => {});
        held.push(s);
      }
      function next() {
        setTimeout(() => require(${JSON.stringify(lib)}).controlRequest(${JSON.stringify(socket)}, { op: 'mounts' }).then(
          () => { process.stdout.write('served'); setTimeout(() => process.exit(0), 1500); },
          (e) => { process.stdout.write(e.message); setTimeout(() => process.exit(0), 1500); }), 200);
      }`;
    const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script], {
      cwd: readable.root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = exitWithin(child, "nobody's script to exit");
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    // While nobody holds its connections (until 1.5 s after its answer), root is served.
    await firstOutput(child.stdout, "nobody's answer from the agent", 20_000, () => `its stderr: ${err.trim() || '(nothing)'}`);
    served();
    assert.deepEqual(await exited, { code: 0, signal: null }, err);
    assert.match(out, /too many control connections of uid 65534/);
    const denied = auditLines(`${socket}.audit.log`).filter((l) => l.event === 'control.denied' && l.reason === 'too many connections');
    assert.equal(denied[0]?.identity, 'uid:65534');
  });
});
