import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  canMountFuse,
  forceUnmount,
  readableCheckout,
  startAgent,
  startResolver,
  strata,
  waitFor,
  type AgentProcess,
  type ReadableCheckout,
  type ResolverProcess,
} from '@strata/harness';
import { CertDir } from '../support/certs';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { auditLines } from '../support/audit-lines';
import { exitWithin } from '../support/bounded';
import { startStoreAndAgents, type StoreAndAgents } from './store-and-agents';

/**
 * Host users on an agent whose control socket is open to a group: `nobody`
 * (setpriv) runs the real CLI against a real agent, whose resolver serves
 * mutual TLS and enforces grants given to host-user identities.
 */

const skip = canMountFuse() && spawnSync('sh', ['-c', 'command -v setpriv']).status === 0 ? false : 'needs root, /dev/fuse and setpriv';
const NOBODY = 65534;
const NOGROUP = 65534;
/** A uid no account has: "someone else". */
const OTHER_UID = 4321;
const OPS = 'spiffe://test/ops';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The checkout as nobody can read it (a clone under /root or `mktemp -d` is closed to nobody):
 * made on first use, removed after the file's tests.
 */
let readableCopy: ReadableCheckout | undefined;
const readable = (): ReadableCheckout => (readableCopy ??= readableCheckout());
after(() => readableCopy?.remove());

/** A command as nobody:nogroup with no supplementary groups. */
function asNobody(cmd: string[]): Run {
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', ...cmd], {
    cwd: readable().root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: `${r.stderr}${r.error ? `\n(${r.error.message})` : ''}` };
}

function strataAsNobody(args: string[]): Run {
  return asNobody([process.execPath, readable().bin, ...args]);
}

/** A control request straight to the socket as nobody, past the CLI's own checks (as an attacker would). */
function requestAsNobody(socketPath: string, request: Record<string, unknown>): Run {
  const lib = readable().at('libs/agent-control/dist/index.js');
  const script = `require(${JSON.stringify(lib)}).controlRequest(${JSON.stringify(socketPath)}, ${JSON.stringify(request)}).then((r) => { process.stdout.write(JSON.stringify(r)); }, (e) => { process.stderr.write(e.message); process.exit(1); });`;
  return asNobody([process.execPath, '-e', script]);
}

function mountsLine(mountpoint: string): string | undefined {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[1] === mountpoint);
}


async function auditHas(file: string, pred: (l: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const hit = auditLines(file).find(pred);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`no audit line for ${what}: ${JSON.stringify(auditLines(file), null, 1)}`);
}

const detail = (l: Record<string, unknown>): Record<string, unknown> => (l.detail ?? {}) as Record<string, unknown>;

describe('host users on a group-open control socket (mutual TLS, grants enforced)', { skip }, () => {
  let certs: CertDir;
  let fx: StoreFixture;
  let resolver: ResolverProcess;
  let agent: AgentProcess;
  let work: string;
  let home: string;
  let socket: string;
  let audit: string;
  const mounted: string[] = [];

  const ops = (args: string[]): Run => strata(['--resolver', resolver.address, '--timeout', '5', ...certs.cliArgs('ca', 'ops'), ...args]);

  /** An empty directory of nobody's. */
  function nobodyDir(name: string): string {
    const d = path.join(home, name);
    fs.mkdirSync(d);
    fs.chownSync(d, NOBODY, NOGROUP);
    mounted.push(d);
    return d;
  }

  before(async () => {
    certs = new CertDir('strata-hostusers-certs-');
    certs.makeCa('ca');
    certs.makeLeaf('server', 'ca', 'resolver', 100, 'IP:127.0.0.1');
    certs.makeLeaf('ops', 'ca', 'operator', 101, `URI:${OPS}`);
    certs.makeLeaf('agent', 'ca', 'agent', 102, 'URI:spiffe://test/agent');
    fx = await makeStore([
      {
        entries: [
          { type: 'file', path: '/pub.txt', content: 'public\n', mode: 0o644 },
          { type: 'file', path: '/secret.txt', content: 'root only\n', mode: 0o600, uid: 0, gid: 0 },
          { type: 'file', path: '/bin/setuid-tool', content: '#!/bin/sh\nid -u\n', mode: 0o4755 },
        ],
      },
      { entries: [{ type: 'file', path: '/l1.txt', content: 'l1\n' }] },
      { entries: [{ type: 'file', path: '/l2.txt', content: 'l2\n' }] },
    ]);
    resolver = await startResolver({ store: fx.store, extra: [...certs.serverArgs('server'), '--admin', OPS] });
    // The agent reads layers under its own certificate: it needs read on what it serves, whoever asks for the mount.
    assert.equal(ops(['grant', 'spiffe://test/agent', 'read', '*']).status, 0);
    assert.equal(ops(['grant', 'unix-user:*', 'read', 'l0']).status, 0);
    assert.equal(ops(['grant', 'unix-user:nobody', 'read', 'l1']).status, 0);

    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-hostusers-'));
    fs.chmodSync(work, 0o755);
    home = path.join(work, 'home-nobody');
    fs.mkdirSync(home);
    fs.chownSync(home, NOBODY, NOGROUP);
    // The agent creates the socket's directory itself: 0750, group nogroup.
    socket = path.join(work, 'run', 'agent.sock');
    audit = `${socket}.audit.log`;
    agent = await startAgent({ resolver: resolver.address, socket, extra: [...certs.cliArgs('ca', 'agent'), '--socket-group', 'nogroup', '--prefetch-entries', '0'] });
  });

  after(async () => {
    for (const m of mounted) forceUnmount(m);
    await agent?.stop();
    await resolver?.stop();
    fx?.cleanup();
    certs?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('status under mutual TLS: the agent\'s and this client\'s identities, the resolver answering; nobody may ask it too', () => {
    const r = ops(['status', '--json', '--socket', socket]);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const s = JSON.parse(r.stdout) as { ok: boolean; client: { tls: { mode: string; identity?: string } }; agent: { tls: { mode: string; identity?: string } }; resolvers: { version?: string }[] };
    assert.equal(s.ok, true);
    assert.deepEqual(s.agent.tls, { mode: 'mutual', identity: 'spiffe://test/agent' });
    assert.deepEqual(s.client.tls, { mode: 'mutual', identity: OPS });
    assert.match(s.resolvers[0].version ?? '', /^\d+\.\d+\.\d+/);
    const text = ops(['status', '--socket', socket]);
    assert.match(text.stdout, /to resolvers: TLS \(mutual\) as spiffe:\/\/test\/agent/);
    // A member of the socket's group reads the agent's state; without a certificate of its own the mutual-TLS resolver does not answer it: degraded, exit 1.
    const mine = strataAsNobody(['status', '--json', '--socket', socket]);
    assert.equal(mine.status, 1, mine.stderr);
    const seen = JSON.parse(mine.stdout) as { agent: { up: boolean }; resolvers: { error?: string }[] };
    assert.equal(seen.agent.up, true);
    assert.ok(seen.resolvers[0].error);
  });

  test('the socket is 0660 in a 0750 directory, both of the configured group', () => {
    const dir = fs.statSync(path.dirname(socket));
    assert.equal(dir.mode & 0o777, 0o750);
    assert.equal(dir.gid, NOGROUP);
    const sock = fs.statSync(socket);
    assert.equal(sock.mode & 0o777, 0o660);
    assert.equal(sock.gid, NOGROUP);
    assert.equal(fs.statSync(audit).mode & 0o777, 0o600);
  });

  test('nobody mounts a layer every host user may read on an empty directory of its own: ro, nosuid, nodev, the image modes decide', async () => {
    const mnt = nobodyDir('open');
    const r = strataAsNobody(['mount', 'l0', mnt, '--socket', socket, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { flags: string[]; layerName: string };
    assert.equal(info.layerName, 'l0');
    assert.ok(info.flags.includes('nosuid') && info.flags.includes('nodev'), info.flags.join(','));
    const line = mountsLine(mnt);
    assert.ok(line, 'mounted');
    const opts = line.split(' ')[3].split(',');
    for (const o of ['ro', 'nosuid', 'nodev', 'default_permissions', 'allow_other']) assert.ok(opts.includes(o), `${o} in ${line}`);

    const pub = asNobody(['cat', path.join(mnt, 'pub.txt')]);
    assert.equal(pub.status, 0, pub.stderr);
    assert.equal(pub.stdout, 'public\n');
    const secret = asNobody(['cat', path.join(mnt, 'secret.txt')]);
    assert.notEqual(secret.status, 0);
    assert.match(secret.stderr, /Permission denied/);
    // Root is not held back by the image's modes (default_permissions, as on any file system).
    const rootRead = spawnSync('cat', [path.join(mnt, 'secret.txt')], { encoding: 'utf8' });
    assert.equal(rootRead.stdout, 'root only\n');

    const ok = await auditHas(audit, (l) => l.event === 'mount' && l.result === 'ok' && detail(l).mountpoint === mnt, 'the mount');
    assert.equal(ok.identity, 'unix-user:nobody');
    assert.equal(detail(ok).uid, NOBODY);
    assert.equal(typeof detail(ok).pid, 'number');
    assert.equal(ok.layer, 'l0');

    const u = strataAsNobody(['umount', mnt, '--socket', socket]);
    assert.equal(u.status, 0, u.stderr);
    assert.equal(mountsLine(mnt), undefined);
    const un = await auditHas(audit, (l) => l.event === 'unmount' && l.result === 'ok' && detail(l).mountpoint === mnt, 'the unmount');
    assert.equal(un.identity, 'unix-user:nobody');
  });

  test('nobody cannot mount over /etc, a directory of root or of someone else, a non-empty directory of its own, nor a file', async () => {
    const rootDir = path.join(work, 'root-owned');
    fs.mkdirSync(rootDir);
    const otherDir = path.join(work, 'someone-else');
    fs.mkdirSync(otherDir);
    fs.chownSync(otherDir, OTHER_UID, OTHER_UID);
    const full = nobodyDir('full');
    fs.writeFileSync(path.join(full, 'mine'), 'x');
    const file = path.join(home, 'a-file');
    fs.writeFileSync(file, '');
    fs.chownSync(file, NOBODY, NOGROUP);
    const cases: [string, RegExp][] = [
      ['/etc', /system directory/],
      [rootDir, /is not yours/],
      [otherDir, /is not yours/],
      [full, /is not empty/],
      [file, /not a directory/],
    ];
    for (const [mnt, why] of cases) {
      const r = requestAsNobody(socket, { op: 'mount', layer: 'l0', mountpoint: mnt });
      assert.notEqual(r.status, 0, `${mnt} mounted`);
      assert.match(r.stderr, why, `${mnt}: ${r.stderr}`);
      assert.equal(mountsLine(mnt), undefined, `${mnt} is not a mount`);
      const denied = await auditHas(audit, (l) => l.event === 'mount' && l.result === 'denied' && detail(l).mountpoint === mnt, `the refusal at ${mnt}`);
      assert.equal(denied.identity, 'unix-user:nobody');
      assert.equal(typeof denied.reason, 'string');
    }
    assert.deepEqual(fs.readdirSync(full), ['mine']);
  });

  test('a layer without a grant is refused like one that does not exist', async () => {
    const mnt = nobodyDir('refused');
    const none = strataAsNobody(['mount', 'l2', mnt, '--socket', socket]);
    const missing = strataAsNobody(['mount', 'no-such-layer', mnt, '--socket', socket]);
    assert.notEqual(none.status, 0);
    assert.match(none.stderr, /permission denied: unix-user:nobody may not mount layer "l2"/);
    assert.equal(missing.stderr.replace('no-such-layer', 'l2'), none.stderr);
    assert.equal(mountsLine(mnt), undefined);
    await auditHas(audit, (l) => l.event === 'mount' && l.result === 'denied' && l.layer === 'l2', 'the refused layer');
  });

  test('a layer granted to nobody alone mounts privately: owned by nobody, no allow_other, no other user (root included) let in', async () => {
    const mnt = nobodyDir('private');
    const r = strataAsNobody(['mount', 'l1', mnt, '--socket', socket, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const line = mountsLine(mnt);
    assert.ok(line, 'mounted');
    const opts = line.split(' ')[3].split(',');
    assert.ok(!opts.includes('allow_other'), line);
    assert.ok(opts.includes(`user_id=${NOBODY}`), line);
    const mine = asNobody(['ls', mnt]);
    assert.equal(mine.status, 0, mine.stderr);
    const rootLs = spawnSync('ls', [mnt], { encoding: 'utf8' });
    assert.notEqual(rootLs.status, 0, 'FUSE admits only the owner without allow_other');
    assert.match(rootLs.stderr, /Permission denied/);
    const u = strataAsNobody(['umount', mnt, '--socket', socket]);
    assert.equal(u.status, 0, u.stderr);
    assert.equal(mountsLine(mnt), undefined);
  });

  test("a revoked grant withdraws the user's mount (what the agent holds cached stops answering too)", async () => {
    const mnt = nobodyDir('revoked');
    const r = strataAsNobody(['mount', 'l1', mnt, '--socket', socket]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(asNobody(['cat', path.join(mnt, 'l1.txt')]).stdout, 'l1\n');
    assert.equal(ops(['revoke', 'unix-user:nobody', 'read', 'l1']).status, 0);
    try {
      await waitFor('the mount withdrawn', () => (mountsLine(mnt) === undefined ? true : undefined), 15_000);
      const gone = await auditHas(audit, (l) => l.event === 'unmount' && detail(l).mountpoint === mnt, 'the withdrawal');
      assert.equal(detail(gone).how, 'withdrawn');
      assert.match(String(detail(gone).reason), /revoked/);
    } finally {
      assert.equal(ops(['grant', 'unix-user:nobody', 'read', 'l1']).status, 0);
    }
  });

  test('nobody cannot unmount a mount of root; root unmounts it', async () => {
    const mnt = path.join(work, 'roots-mount');
    fs.mkdirSync(mnt);
    mounted.push(mnt);
    agent.mount('l2', mnt);
    const r = strataAsNobody(['umount', mnt, '--socket', socket]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /not mounted by you/);
    assert.ok(mountsLine(mnt));
    await auditHas(audit, (l) => l.event === 'unmount' && l.result === 'denied' && detail(l).mountpoint === mnt, 'the refused unmount');
    agent.umount(mnt);
    assert.equal(mountsLine(mnt), undefined);
    const ok = await auditHas(audit, (l) => l.event === 'unmount' && l.result === 'ok' && detail(l).mountpoint === mnt, "root's unmount");
    assert.equal(ok.identity, 'unix-user:root');
  });

  test('a layer marked audit: every file opened through the mount is an audit line with who opened which path', async () => {
    const created = ops(['layer', 'create', '--source', 'dir:layers/0', '--name', 'audited', '--option', 'audit']);
    assert.equal(created.status, 0, created.stderr);
    assert.equal(ops(['grant', 'unix-user:*', 'read', 'audited']).status, 0);
    const mnt = nobodyDir('audited');
    const r = strataAsNobody(['mount', 'audited', mnt, '--socket', socket]);
    assert.equal(r.status, 0, r.stderr);
    const cat = asNobody(['cat', path.join(mnt, 'pub.txt')]);
    assert.equal(cat.stdout, 'public\n');
    const denied = asNobody(['cat', path.join(mnt, 'secret.txt')]);
    assert.notEqual(denied.status, 0);
    const opened = await auditHas(audit, (l) => l.event === 'file.open' && detail(l).path === '/pub.txt', 'the open of /pub.txt');
    assert.equal(opened.identity, 'unix-user:nobody');
    assert.equal(detail(opened).uid, NOBODY);
    assert.equal(detail(opened).mountpoint, mnt);
    assert.equal(opened.layer, 'audited');
    // default_permissions refuses in the kernel: a denied open never reaches the session, so it is not an open.
    assert.equal(auditLines(audit).filter((l) => l.event === 'file.open' && detail(l).path === '/secret.txt').length, 0);
    // A layer without the mark logs no opens.
    assert.equal(auditLines(audit).filter((l) => l.event === 'file.open' && l.layer !== 'audited').length, 0);
    assert.equal(strataAsNobody(['umount', mnt, '--socket', socket]).status, 0);
  });

  test('a symbolic link as the mountpoint, or on the way to it, is refused', () => {
    const target = path.join(work, 'link-target');
    fs.mkdirSync(target);
    fs.chownSync(target, NOBODY, NOGROUP);
    const link = path.join(home, 'link');
    fs.symlinkSync(target, link);
    fs.lchownSync(link, NOBODY, NOGROUP);
    const r = strataAsNobody(['mount', 'l0', link, '--socket', socket]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /is a symbolic link/);
    // A link in a parent: the directory at the end is nobody's, the path to it is not what the agent checks.
    const parentLink = path.join(home, 'via');
    fs.symlinkSync(work, parentLink);
    const through = strataAsNobody(['mount', 'l0', path.join(parentLink, 'link-target'), '--socket', socket]);
    assert.notEqual(through.status, 0);
    assert.match(through.stderr, /reached through a symbolic link/);
    assert.equal(mountsLine(target), undefined);
  });

  test('a symlink swapped in for the mountpoint while nobody mounts: no mount ever lands on the link\'s target', async () => {
    const target = path.join(work, 'swap-target');
    fs.mkdirSync(target);
    const mnt = path.join(home, 'swap');
    fs.mkdirSync(mnt);
    fs.chownSync(mnt, NOBODY, NOGROUP);
    mounted.push(mnt, target);
    // nobody flips its own directory and a symlink to root's directory as fast as it can.
    const swapper = spawn('setpriv', [
      '--reuid=nobody',
      '--regid=nogroup',
      '--clear-groups',
      'sh',
      '-c',
      `cd ${home} && while :; do mv swap swap.d 2>/dev/null; ln -s ${target} swap 2>/dev/null; rm -f swap; mv swap.d swap 2>/dev/null; done`,
    ], { stdio: 'ignore' });
    let mountedCount = 0;
    let refused = 0;
    try {
      for (let i = 0; i < 40; i++) {
        const r = strataAsNobody(['mount', 'l0', mnt, '--socket', socket]);
        assert.equal(mountsLine(target), undefined, `attempt ${i} mounted on ${target}`);
        if (r.status === 0) {
          mountedCount++;
          // A mountpoint cannot be renamed: the swapper fails until it is unmounted.
          assert.ok(mountsLine(mnt), `attempt ${i}: mounted where asked`);
          // Lazily: the swapper's own look-ups may be inside it right now.
          const u = strataAsNobody(['umount', mnt, '--lazy', '--socket', socket]);
          assert.equal(u.status, 0, u.stderr);
        } else {
          refused++;
          assert.doesNotMatch(r.stderr, /internal|TypeError/);
        }
      }
    } finally {
      swapper.kill('SIGKILL');
      await exitWithin(swapper, 'the swapper to die of SIGKILL', 10_000);
    }
    assert.equal(mountsLine(target), undefined);
    const left = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1]?.startsWith(`${home}/`));
    assert.deepEqual(left, [], 'no mount left behind under the home');
    process.stdout.write(`# swap race: ${mountedCount} mounted where asked, ${refused} refused, 0 elsewhere\n`);
  });
});

describe('host users against a resolver that enforces no grants (plaintext)', { skip }, () => {
  let fx: StoreFixture;
  let rig: StoreAndAgents | undefined;
  let resolver: ResolverProcess;
  let agent: AgentProcess;
  let work: string;
  let socket: string;

  before(async () => {
    fx = await makeStore([{ entries: [{ type: 'file', path: '/a', content: 'a\n' }] }]);
    rig = await startStoreAndAgents({ prefix: 'hostusers-plain', store: fx.store });
    ({ work, resolver } = rig);
    fs.chmodSync(work, 0o755);
    socket = path.join(work, 'run', 'agent.sock');
    agent = await rig.startAgent({ socket, extra: ['--socket-group', 'nogroup', '--prefetch-entries', '0'] });
  });

  after(async () => {
    if (work) forceUnmount(path.join(work, 'root'));
    await rig?.close();
    fx?.cleanup();
  });

  test('a non-root mount is refused (no grant can be checked); root mounts as before', () => {
    const mine = path.join(work, 'mine');
    fs.mkdirSync(mine);
    fs.chownSync(mine, NOBODY, NOGROUP);
    const r = strataAsNobody(['mount', 'l0', mine, '--socket', socket]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /enforces no grants/);
    const rootMnt = path.join(work, 'root');
    fs.mkdirSync(rootMnt);
    agent.mount('l0', rootMnt);
    assert.equal(fs.readFileSync(path.join(rootMnt, 'a'), 'utf8'), 'a\n');
    agent.umount(rootMnt);
  });

  test('without --socket-group the socket is 0600 in a 0700 directory', async () => {
    const s = path.join(work, 'private', 'agent.sock');
    const a = await startAgent({ resolver: resolver.address, socket: s, extra: ['--prefetch-entries', '0'] });
    try {
      assert.equal(fs.statSync(path.dirname(s)).mode & 0o777, 0o700);
      assert.equal(fs.statSync(s).mode & 0o777, 0o600);
      const r = strataAsNobody(['mounts', '--socket', s]);
      assert.notEqual(r.status, 0);
      // Refused by the directory's mode, not by a CLI nobody could not load.
      assert.match(r.stderr, /EACCES|permission denied/i);
    } finally {
      await a.stop();
    }
  });
});
