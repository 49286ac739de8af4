import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readableCheckout, startResolver, type ReadableCheckout, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { exitWithin } from '../support/bounded';

/**
 * A FUSE server that may not mount: run as `nobody` (/dev/fuse closed to it,
 * or mount(2) refused) and as root without CAP_SYS_ADMIN (mount(2) refused).
 * Every such failure is an error and an exit status, never an abort in
 * native code, and leaves nothing behind.
 */

const skip = process.getuid?.() === 0 && fs.existsSync('/dev/fuse') && spawnSync('sh', ['-c', 'command -v setpriv']).status === 0 ? false : 'needs root, /dev/fuse and setpriv';

const AS_NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
/** Root, but mount(2) refused: CAP_SYS_ADMIN out of the bounding set (so out of every set after exec). */
const WITHOUT_SYS_ADMIN = ['--bounding-set=-sys_admin'];

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

async function runAs(privileges: string[], argv: string[], cwd: string): Promise<Ran> {
  const child = spawn('setpriv', [...privileges, process.execPath, ...argv], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const { code, signal } = await exitWithin(child, `${argv.slice(0, 3).join(' ')} to exit`, 30_000);
  return { code, signal, stdout, stderr };
}

describe('FUSE refused: a clean error, no native abort', { skip }, () => {
  let readable: ReadableCheckout;
  let work: string;
  let fx: StoreFixture;
  let resolver: ResolverProcess;

  before(async () => {
    readable = readableCheckout();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-unprivileged-'));
    fs.chmodSync(work, 0o777);
    fx = await makeStore([{ entries: [{ type: 'file', path: '/a', content: 'a\n' }] }]);
    resolver = await startResolver({ store: fx.store });
  });

  after(async () => {
    await resolver?.stop();
    fx?.cleanup();
    readable?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** FuseSession.mount in a child: prints the rejection (errno, message), then lives on through a collection and a few turns of the loop. */
  const mountScript = (mountpoint: string): string => `
    const { FuseSession } = require(${JSON.stringify(readable.at('libs/fuse-kernel/dist/index.js'))});
    FuseSession.mount(${JSON.stringify(mountpoint)}, {}, {}).then(
      () => { process.stdout.write('mounted\\n'); process.exit(3); },
      (e) => {
        process.stdout.write(JSON.stringify({ name: e.name, errno: e.errno, message: e.message }) + '\\n');
        global.gc();
        setTimeout(() => { global.gc(); setTimeout(() => process.exit(0), 100); }, 200);
      });`;

  for (const [who, privileges, errnos] of [
    ['nobody', AS_NOBODY, [1, 13]],
    ['root without CAP_SYS_ADMIN', WITHOUT_SYS_ADMIN, [1]],
  ] as const) {
    test(`the addon as ${who}: mount rejects with a StrataError (EPERM or EACCES) and the process carries on`, async () => {
      const mnt = fs.mkdtempSync(path.join(work, 'mnt-'));
      fs.chmodSync(mnt, 0o777);
      const r = await runAs([...privileges], ['--expose-gc', '-e', mountScript(mnt)], readable.root);
      assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);
      assert.doesNotMatch(r.stderr, /FATAL|napi/);
      const e = JSON.parse(r.stdout.trim()) as { name: string; errno: number; message: string };
      assert.equal(e.name, 'StrataError', e.message);
      assert.ok((errnos as readonly number[]).includes(e.errno), `errno ${e.errno}: ${e.message}`);
      assert.match(e.message, /\/dev\/fuse|mount /);
    });
  }

  for (const [who, privileges, why] of [
    ['nobody', AS_NOBODY, /\/dev\/fuse cannot be opened \(EACCES\)|lacks CAP_SYS_ADMIN/],
    ['root without CAP_SYS_ADMIN', WITHOUT_SYS_ADMIN, /lacks CAP_SYS_ADMIN, which mount\(2\) needs/],
  ] as const) {
    test(`strata agent as ${who}: exit 1 at start with what to do, a log line, no data cache left`, async () => {
      const dir = fs.mkdtempSync(path.join(work, 'agent-'));
      fs.chmodSync(dir, 0o777);
      const cache = path.join(dir, 'cache');
      const r = await runAs(
        [...privileges],
        [readable.bin, 'agent', '--resolver', resolver.address, '--socket', path.join(dir, 'agent.sock'), '--data-cache-dir', cache, '--mount', `l0:${dir}`],
        readable.root,
      );
      assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, r.stderr);
      assert.doesNotMatch(r.stderr, /FATAL|napi| {4}at /);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /run the agent as root/);
      const logged = r.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { event?: string; err?: string });
      assert.ok(
        logged.some((l) => l.event === 'agent.start_failed' && why.test(l.err ?? '')),
        r.stderr,
      );
      assert.deepEqual(fs.existsSync(cache) ? fs.readdirSync(cache) : [], [], 'no data cache directory left');
      assert.ok(!fs.existsSync(path.join(dir, 'agent.sock')), 'no socket left');
    });
  }

  test('strata agent as root whose --mount fails (a file for a mountpoint): exit 1, no file data cached', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'agent-root-'));
    const cache = path.join(dir, 'cache');
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    const r = await runAs([], [readable.bin, 'agent', '--resolver', resolver.address, '--socket', path.join(dir, 'agent.sock'), '--data-cache-dir', cache, '--mount', `l0:${file}`], readable.root);
    assert.deepEqual({ code: r.code, signal: r.signal }, { code: 1, signal: null }, r.stderr);
    assert.match(r.stderr, /--mount l0:.*a-file/);
    // The data cache outlives agents (the next one reuses it): what is left is its directory, holding no file data.
    const data = fs.existsSync(cache) ? fs.readdirSync(cache, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.data')) : [];
    assert.deepEqual(data, [], 'no file data cached');
  });
});
