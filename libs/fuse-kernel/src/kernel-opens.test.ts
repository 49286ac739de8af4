/**
 * kernelOpens: the first OPEN of a file is answered ENOSYS and the kernel
 * opens files itself from then on (FUSE_NO_OPEN_SUPPORT). Read through real
 * mounts by child processes: what reaches the session (OPEN, RELEASE, READ
 * and its fh), the page cache answering re-reads, registered data served by
 * pread, and the mode kept across a takeover.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { parseHandover } from './handover';
import { addon } from './native';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { cleanUp, run, skipReason, tempMountpoint } from './mount-harness';
import type { FuseHandlers, SessionHandover } from './types';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const FILES = 12;

/** Every READ that reached JavaScript: ino and fh. */
function recording(handlers: FuseHandlers): { handlers: FuseHandlers; reads: Array<{ ino: bigint; fh: bigint }> } {
  const reads: Array<{ ino: bigint; fh: bigint }> = [];
  return {
    reads,
    handlers: {
      ...handlers,
      read: (ino, fh, offset, size, caller) => {
        reads.push({ ino, fh });
        return handlers.read(ino, fh, offset, size, caller);
      },
    },
  };
}

/** sha256 of each path, in order (one `sha256sum` child). */
async function sums(paths: string[]): Promise<string[]> {
  const r = await run('sha256sum', paths, { timeoutMs: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.toString().trim().split('\n').map((l) => l.split(' ')[0] as string);
}

function holdFds(fds: readonly number[]): Promise<ChildProcess> {
  const child = spawn('sleep', ['120'], { stdio: ['ignore', 'ignore', 'ignore', ...fds] });
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child));
    child.once('error', reject);
  });
}

const SEALED = { keepCache: true, entryTimeout: 3600, attrTimeout: 3600 } as const;

describe('kernelOpens: the kernel opens files itself', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n, { cacheTtl: Infinity, entryTimeout: 3600, attrTimeout: 3600 });
  const contents = Array.from({ length: FILES }, (_, i) => randomBytes(1000 + i * 7919));
  const files = contents.map((c, i) => toy.file(1n, `f${i}`, c));
  const sub = toy.mkdir(1n, 'sub');
  const late = randomBytes(70_000);
  const lateFile = toy.file(sub.ino, 'late', late);
  // What read() answers for `registered` differs from its registered file: who served a read shows.
  const registeredData = randomBytes(300_000);
  const registered = toy.file(1n, 'registered', Buffer.alloc(registeredData.length, 0x2a));
  const store = mkdtempSync(join(tmpdir(), 'fuse-kernel-kopens-'));
  const rec = recording(toy.handlers());
  let session: FuseSession | undefined;
  let successor: FuseSession | undefined;
  let holder: ChildProcess | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  const paths = (): string[] => files.map((_, i) => join(mnt?.path ?? '', `f${i}`));

  before(async () => {
    writeFileSync(join(store, 'registered'), registeredData);
    mnt = tempMountpoint();
    session = await FuseSession.mount(mnt.path, rec.handlers, {
      ...SEALED,
      rootAttr: toy.nodes.get(1n)?.attr,
      kernelOpens: true,
      openModesFile: join(store, 'opens'),
    });
  });

  after(async () => {
    holder?.kill('SIGKILL');
    await cleanUp(successor, undefined);
    await cleanUp(session, mnt);
    rmSync(store, { recursive: true, force: true });
  });

  it('is on where the kernel offers it, without passthrough or an open-modes file', (t) => {
    const st = (session as FuseSession).stats();
    if (!st.kernelOpens) return t.skip('the kernel did not offer FUSE_NO_OPEN_SUPPORT');
    assert.equal((session as FuseSession).kernelOpens, true);
    assert.equal(st.passthrough, false);
    assert.equal(st.openModes.capacity, 0);
    assert.ok(st.protocolMinor >= 23);
  });

  it('reads every file right with at most one OPEN and no RELEASE reaching the session, READs with fh 0', async (t) => {
    const s = session as FuseSession;
    if (!s.stats().kernelOpens) return t.skip('the kernel did not offer FUSE_NO_OPEN_SUPPORT');
    assert.deepEqual(await sums(paths()), contents.map(sha));
    const st = s.stats();
    // Only the connection's first OPEN (ENOSYS): concurrent first opens could make it two or three, never one per file.
    assert.ok(st.opens >= 1 && st.opens <= 2, `opens ${st.opens}`);
    assert.equal(st.releases, 0);
    assert.ok(rec.reads.length >= FILES);
    assert.ok(rec.reads.every((r) => r.fh === 0n), 'every READ carries fh 0');
    // A directory is still opened through the session (OPENDIR unchanged): listing works.
    const ls = await run('ls', [mnt?.path ?? '']);
    assert.equal(ls.status, 0, ls.stderr);
    assert.equal(ls.stdout.toString().trim().split('\n').length, FILES + 2);
  });

  it('answers re-reads from the page cache: no OPEN, RELEASE nor READ', async (t) => {
    const s = session as FuseSession;
    if (!s.stats().kernelOpens) return t.skip('the kernel did not offer FUSE_NO_OPEN_SUPPORT');
    const before = { ...s.stats(), reads: rec.reads.length };
    assert.deepEqual(await sums([...paths(), ...paths()]), [...contents, ...contents].map(sha));
    const st = s.stats();
    assert.equal(st.opens, before.opens);
    assert.equal(st.releases, 0);
    assert.equal(rec.reads.length, before.reads, 'no READ for pages the kernel keeps');
  });

  it('serves registered data by pread (auto), refuses passthrough clearly', async (t) => {
    const s = session as FuseSession;
    if (!s.stats().kernelOpens) return t.skip('the kernel did not offer FUSE_NO_OPEN_SUPPORT');
    const fd = openSync(join(store, 'registered'), 'r');
    try {
      assert.equal(s.setFileData(registered.ino, fd), 'pread');
      assert.throws(
        () => s.setPassthrough(registered.ino, fd),
        (err: unknown) => isStrataError(err) && err.errno === Errno.EOPNOTSUPP && /kernelOpens/.test(err.message),
      );
    } finally {
      closeSync(fd);
    }
    const before = { preads: s.stats().preadReads, reads: rec.reads.length };
    assert.deepEqual(await sums([join(mnt?.path ?? '', 'registered')]), [sha(registeredData)]);
    // O_DIRECT: every read a READ with fh 0, answered by pread.
    const direct = await run('sh', ['-c', `dd if=${join(mnt?.path ?? '', 'registered')} bs=64k iflag=direct status=none | sha256sum`]);
    assert.equal(direct.status, 0, direct.stderr);
    assert.equal(direct.stdout.toString().split(' ')[0], sha(registeredData));
    assert.ok(s.stats().preadReads >= before.preads + Math.ceil(registeredData.length / 65536));
    assert.equal(rec.reads.filter((r) => r.ino === registered.ino).length, 0);
    assert.equal(s.stats().openModes.records, 0, 'the open table records nothing');
  });

  it('refuses kernelOpens without keepCache, and with an opened (audit) handler', async () => {
    const other = tempMountpoint();
    try {
      for (const [handlers, options] of [
        [toy.handlers(), { kernelOpens: true }],
        [{ ...toy.handlers(), opened: () => undefined }, { ...SEALED, kernelOpens: true }],
      ] as const) {
        await assert.rejects(FuseSession.mount(other.path, handlers, options), (err: unknown) => isStrataError(err) && err.errno === Errno.EINVAL);
      }
    } finally {
      other.remove();
    }
  });

  it('a successor keeps the connection in the mode, whatever its own options say', async (t) => {
    const s = session as FuseSession;
    if (!s.stats().kernelOpens) return t.skip('the kernel did not offer FUSE_NO_OPEN_SUPPORT');
    const fds = s.handoverFds();
    holder = await holdFds(fds);
    await s.release();
    const state = JSON.parse(JSON.stringify(s.handoverState())) as SessionHandover;
    assert.equal(state.negotiated.kernelOpens, true);
    assert.equal(state.negotiated.passthrough, false);
    const taken = fds.map((_, i) => addon().takeFd(holder?.pid as number, 3 + i));
    const rec2 = recording(toy.handlers());
    try {
      successor = FuseSession.adopt(taken, state, rec2.handlers, { kernelOpens: false, openModesFile: join(store, 'opens') });
    } finally {
      for (const fd of taken) closeSync(fd);
    }
    const st = successor.stats();
    assert.equal(st.kernelOpens, true);
    assert.equal(st.passthrough, false);
    // The state after release says how files are open: none through the session (the kernel holds them).
    assert.deepEqual(state.files, { opens: [], backings: [] });
    assert.equal(st.openModes.restoredOpens, 0);
    // A file never read before: READs reach the successor with fh 0, no OPEN at all (the kernel remembers).
    assert.deepEqual(await sums([join(mnt?.path ?? '', 'sub', 'late'), ...paths()]), [sha(late), ...contents.map(sha)]);
    assert.equal(successor.stats().opens, 0);
    assert.equal(successor.stats().releases, 0);
    assert.ok(rec2.reads.some((r) => r.ino === lateFile.ino));
    assert.ok(rec2.reads.every((r) => r.fh === 0n));
    // Registered data goes by pread here too.
    const fd = openSync(join(store, 'registered'), 'r');
    try {
      assert.equal(successor.setFileData(lateFile.ino, fd), 'pread');
    } finally {
      closeSync(fd);
    }
  });

  it('refuses a state claiming kernelOpens and passthrough together', () => {
    const state = {
      format: 'strata-fuse-handover',
      version: 1,
      mountpoint: '/mnt/x',
      connection: 1,
      device: null,
      negotiated: { minor: 45, flags: '0', maxWrite: 1 << 20, maxPages: 256, passthrough: true, kernelOpens: true, generation: 0 },
      options: {
        rootIno: '1', fsName: 'x', subtype: 'strata', threads: 4, keepCache: true, readdirplus: 'always', entryTimeout: 1, attrTimeout: 1,
        negativeTimeout: 0, negativeCacheTtl: 0, cacheLimit: 100, passthrough: true, dataServing: 'auto', cloneFd: true, requestTimeoutMs: 0,
      },
    };
    assert.throws(() => parseHandover(state), (err: unknown) => isStrataError(err) && err.errno === Errno.EINVAL);
    assert.equal(parseHandover({ ...state, negotiated: { ...state.negotiated, passthrough: false } }).negotiated.kernelOpens, true);
    const older: Record<string, unknown> = { ...state.negotiated };
    delete older.kernelOpens;
    assert.equal(parseHandover({ ...state, negotiated: older }).negotiated.kernelOpens, undefined);
  });
});
