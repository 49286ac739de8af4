import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, errnoName, isStrataError } from '@strata/errors';
import { Projection, diff, isDirMode } from '@strata/traversal';
import { canMountOverlay, mountOverlay, writeStack, type LayerSpec, type Spelling } from '@strata/harness';
import { kernelListing } from '../support/kernel-overlay';
import { PROBES, mainStack } from '../support/main-fixture';
import { compareTrees, readKernelTree, readEngineTree, ALL_FIELDS, type Field } from '../support/tree-snapshot';
import { referenceDiff } from '../support/reference-diff';

const skip = canMountOverlay() ? false : 'needs root and overlayfs to mount the kernel reference';

interface Stack {
  root: string;
  names: string[];
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-diff-'));
const unmounts: (() => Promise<void>)[] = [];

function stack(label: string, layers: LayerSpec[], spelling: Spelling): Stack {
  const root = path.join(work, label);
  fs.mkdirSync(root, { recursive: true });
  return { root, names: writeStack(root, layers, spelling) };
}

async function kernelMount(s: Stack, label: string, names = s.names, options: string[] = []): Promise<string> {
  const target = path.join(work, 'mnt', label);
  unmounts.push(await mountOverlay(s.root, names, target, options));
  return target;
}

function projection(s: Stack, names = s.names): Projection {
  return new Projection(names.map((n) => path.join(s.root, n)));
}

async function engineErrno(p: Projection, probe: string): Promise<string> {
  try {
    await p.stat(probe);
    return 'ok';
  } catch (err) {
    assert.ok(isStrataError(err), `engine threw a non-StrataError for ${probe}: ${String(err)}`);
    return errnoName(err.errno);
  }
}

function kernelErrno(mount: string, probe: string): string {
  try {
    fs.lstatSync(path.join(mount, probe));
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unknown';
  }
}

after(async () => {
  for (const u of unmounts.reverse()) await u();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('engine against kernel overlayfs', { skip }, () => {
  let trusted: Stack;
  let kernelMain: string;

  before(async () => {
    trusted = stack('trusted', mainStack(), 'trusted');
    kernelMain = await kernelMount(trusted, 'trusted');
  });

  test('every path, every stat field, xattrs, link targets and content match (kernel spelling)', async () => {
    const expected = readKernelTree(kernelMain);
    const actual = await readEngineTree(projection(trusted));
    assert.ok(expected.size > 50, `fixture too small: ${expected.size}`);
    assert.deepEqual(compareTrees(expected, actual, ALL_FIELDS), []);
  });

  test('every intermediate layer of the stack matches too', async () => {
    // The kernel refuses a read-only overlay of a single lower layer, so stacks start at two.
    for (let depth = 2; depth < trusted.names.length; depth++) {
      const names = trusted.names.slice(trusted.names.length - depth);
      const mount = await kernelMount(trusted, `trusted-${depth}`, names);
      assert.deepEqual(compareTrees(readKernelTree(mount), await readEngineTree(projection(trusted, names)), ALL_FIELDS), [], `stack of ${depth}`);
    }
  });

  test('errno of missing, whited-out, through-a-file and looping paths match', async () => {
    const p = projection(trusted);
    for (const probe of PROBES) {
      const k = kernelErrno(kernelMain, probe);
      assert.equal(await engineErrno(p, probe), k, `errno for ${probe}`);
      if (k === 'ok') {
        const st = fs.lstatSync(path.join(kernelMain, probe), { bigint: true });
        const a = await p.stat(probe);
        assert.equal(a.ino, Number(st.ino), `ino of ${probe}`);
        assert.equal(a.mode, Number(st.mode), `mode of ${probe}`);
      }
    }
  });

  test('user.overlay.opaque with the userxattr spelling matches the kernel mounted with userxattr', async () => {
    const s = stack('user', mainStack(), 'user');
    const mount = await kernelMount(s, 'user', s.names, ['userxattr']);
    assert.deepEqual(compareTrees(readKernelTree(mount), await readEngineTree(projection(s)), ALL_FIELDS), []);
  });

  test('OCI spelling (.wh. files, .wh..wh..opq) gives the same tree as the kernel spelling', async () => {
    const s = stack('oci', mainStack(), 'oci');
    // Different objects on disk: identity and directory sizes (which count the
    // hidden .wh.* entries) differ by construction; everything else must not.
    const skipFields = (_p: string, info: { mode: number }): Field[] => (isDirMode(info.mode) ? ['ino', 'size', 'blocks'] : ['ino']);
    assert.deepEqual(compareTrees(readKernelTree(kernelMain), await readEngineTree(projection(s)), ALL_FIELDS, skipFields), []);
    const p = projection(s);
    for (const probe of PROBES) assert.equal(await engineErrno(p, probe), kernelErrno(kernelMain, probe), `errno for ${probe}`);
  });

  test('readdir with attributes agrees with walk and with the kernel listing', async () => {
    const p = projection(trusted);
    for (const dir of ['/', '/etc', '/names', '/var/log', '/opt/app/bin', '/deep/a/b', '/onlyupper', '/empty']) {
      const kernelNames = kernelListing(Buffer.from(path.join(kernelMain, dir)))
        .map((n) => n.toString('hex'))
        .sort();
      const entries = await p.readdir(dir);
      assert.deepEqual(entries.map((e) => e.name.toString('hex')).sort(), kernelNames, `listing of ${dir}`);
      for (const e of entries) {
        const child = Buffer.concat([Buffer.from(dir === '/' ? '/' : `${dir}/`), e.name]);
        assert.deepEqual(e.attr, await p.stat(child));
      }
    }
  });

  test('statfs reports the filesystem of the topmost layer, as overlayfs does', async () => {
    const k = fs.statfsSync(kernelMain, { bigint: true });
    const e = await projection(trusted).statfs();
    assert.equal(e.bsize, Number(k.bsize));
    assert.equal(e.blocks, Number(k.blocks));
    assert.equal(e.files, Number(k.files));
  });

  test('reads at offsets past 4 GiB and past the end', async () => {
    const p = projection(trusted);
    const fd = fs.openSync(path.join(kernelMain, 'big/sparse'), 'r');
    try {
      for (const [off, len] of [[0, 8], [4 * 2 ** 30 + 120, 16], [5 * 2 ** 30 - 5, 100], [5 * 2 ** 30, 10], [6 * 2 ** 30, 10]]) {
        const want = Buffer.alloc(len);
        const n = fs.readSync(fd, want, 0, len, off);
        const got = await p.read('/big/sparse', off, len);
        assert.deepEqual(got.data, want.subarray(0, n), `read at ${off}`);
        assert.equal(got.eof, off + n >= 5 * 2 ** 30);
      }
    } finally {
      fs.closeSync(fd);
    }
    await assert.rejects(p.read('/etc', 0, 10), (e: unknown) => isStrataError(e) && e.errno === Errno.EISDIR);
  });

  test('diff between two layers matches the changes computed from two kernel mounts', async () => {
    const lower = trusted.names.slice(2);
    const mountLower = await kernelMount(trusted, 'diff-lower', lower);
    const cases: [string, Projection, string, Projection][] = [
      [mountLower, projection(trusted, lower), kernelMain, projection(trusted)],
      [kernelMain, projection(trusted), mountLower, projection(trusted, lower)],
    ];
    for (const [fromMount, fromP, toMount, toP] of cases) {
      const expected = referenceDiff(fromMount, toMount);
      const actual: string[] = [];
      for await (const batch of diff(fromP, toP, '/')) {
        for (const c of batch) actual.push(`${c.kind} ${JSON.stringify(c.path.toString('latin1'))}`);
      }
      assert.ok(expected.length > 10, 'the diff fixture changes enough');
      assert.deepEqual(actual, expected);
    }
  });
});
