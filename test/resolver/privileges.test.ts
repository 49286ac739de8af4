import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { REPO, canMountOverlay, mountOverlay, startResolver, strata, waitFor } from '@strata/harness';

/**
 * The resolver run as an unprivileged user, as a hardened unit runs it. It
 * must see what the overlay rules need (trusted.overlay.* xattrs need
 * CAP_SYS_ADMIN, a 0700 directory of a layer needs CAP_DAC_READ_SEARCH):
 * with those two capabilities it serves the kernel's tree; without them it
 * says so at start and refuses what it would get wrong, never serving a
 * silently wrong tree.
 */

const NOBODY = 65534;
const CAPS = ['--inh-caps=+sys_admin,+dac_read_search', '--ambient-caps=+sys_admin,+dac_read_search'];

/** Whether user nobody can run the built CLI from this checkout (a private checkout directory cannot). */
function nobodyCanRun(): boolean {
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, path.join(REPO, 'bin/strata'), 'resolver', '--help'], { encoding: 'utf8' });
  return r.status === 0;
}

const skip = process.getuid?.() !== 0 ? 'needs root' : !canMountOverlay() ? 'needs the kernel overlay' : !nobodyCanRun() ? 'user nobody cannot read this checkout' : false;

let work: string;
let store: string;

interface Unprivileged {
  address: string;
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** `strata resolver` as user nobody, with or without the two capabilities. */
async function resolverAsNobody(withCaps: boolean): Promise<Unprivileged> {
  const args = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...(withCaps ? CAPS : []), process.execPath, path.join(REPO, 'bin/strata'), 'resolver', '--store', store, '--listen', '127.0.0.1:0'];
  const child: ChildProcess = spawn('setpriv', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (l) => {
    try {
      logs.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      logs.push({ event: 'non-json', text: l });
    }
  });
  const ready = await waitFor('the resolver to listen', () => logs.find((l) => l.event === 'resolver.listening') ?? (child.exitCode !== null ? Promise.reject(new Error(JSON.stringify(logs))) : undefined), 30_000);
  return {
    address: `127.0.0.1:${String(ready.port)}`,
    logs,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

describe('the resolver as an unprivileged user', { skip }, () => {
  let kernel: string;
  let unmount: () => Promise<void> = async () => undefined;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-privileges-'));
    fs.chmodSync(work, 0o755);
    store = path.join(work, 'store');
    const lower = path.join(store, 'layers/lower');
    const upper = path.join(store, 'layers/upper');
    fs.mkdirSync(path.join(lower, 'd'), { recursive: true });
    fs.writeFileSync(path.join(lower, 'd/a'), 'from the base\n');
    fs.mkdirSync(path.join(upper, 'd'), { recursive: true });
    fs.writeFileSync(path.join(upper, 'd/b'), 'from the top\n');
    // The kernel's way of saying "this directory hides the one below".
    spawnSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(upper, 'd')]);
    fs.mkdirSync(path.join(upper, 'secret'), { mode: 0o700 });
    fs.writeFileSync(path.join(upper, 'secret/key'), 'k\n', { mode: 0o600 });
    const root = await startResolver({ store });
    try {
      const env = { STRATA_RESOLVER: root.address };
      assert.equal(strata(['layer', 'create', '--source', 'dir:layers/lower', '--name', 'lower'], env).status, 0);
      assert.equal(strata(['layer', 'create', '--source', 'dir:layers/upper', '--type', 'overlay', '--base', 'lower', '--name', 'upper'], env).status, 0);
      assert.equal(strata(['layer', 'create', '--source', 'dir:layers/lower', '--name', 'single'], env).status, 0);
    } finally {
      await root.stop();
    }
    // The catalog is the resolver's own (it locks and writes there); the layers stay root's.
    spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, path.join(store, '.strata')]);
    kernel = path.join(work, 'kernel');
    fs.mkdirSync(kernel);
    unmount = await mountOverlay(path.join(store, 'layers'), ['upper', 'lower'], kernel);
  });

  after(async () => {
    await unmount();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('with CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH it serves the kernel\'s tree: the opaque directory hides its base, the 0700 directory reads', async () => {
    const r = await resolverAsNobody(true);
    try {
      const env = { STRATA_RESOLVER: r.address };
      const ls = strata(['ls', 'upper', '/d'], env);
      assert.equal(ls.status, 0, ls.stderr);
      assert.deepEqual(ls.stdout.trim().split('\n').map((l) => l.split(/\s+/).pop()), fs.readdirSync(path.join(kernel, 'd')));
      const cat = strata(['cat', 'upper', '/secret/key'], env);
      assert.equal(cat.stdout, fs.readFileSync(path.join(kernel, 'secret/key'), 'utf8'));
      assert.ok(!r.logs.some((l) => l.event === 'resolver.privileges'), 'no warning when it has what it needs');
    } finally {
      await r.stop();
    }
  });

  test('without them it says so at start, refuses the merge it cannot get right and the directory it cannot read, and serves the rest', async () => {
    const r = await resolverAsNobody(false);
    try {
      const warning = r.logs.find((l) => l.event === 'resolver.privileges');
      assert.ok(warning, 'one clear line at start');
      assert.match(String(warning.msg), /CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH/);
      const env = { STRATA_RESOLVER: r.address };
      const merged = strata(['ls', 'upper', '/d'], env);
      assert.notEqual(merged.status, 0, 'a wrong tree (a and b) is never served');
      assert.match(merged.stderr, /trusted\.overlay\.\* xattrs .* lacks CAP_SYS_ADMIN/);
      assert.equal(merged.stderr.trim().split('\n').length, 1, merged.stderr);
      // A single dir: layer needs no opaque markers; only its unreadable directory is refused.
      const single = strata(['ls', 'single', '/d'], env);
      assert.equal(single.status, 0, single.stderr);
      assert.match(single.stdout, /\ba$/m);
      fs.mkdirSync(path.join(store, 'layers/lower/locked'), { mode: 0o700 });
      const locked = strata(['ls', 'single', '/locked'], env);
      assert.notEqual(locked.status, 0);
      assert.match(locked.stderr, /may not read .*locked.*CAP_DAC_READ_SEARCH/);
    } finally {
      await r.stop();
    }
  });
});
