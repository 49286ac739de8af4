import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { cleanUp, run, runNode, skipReason, tempMountpoint } from './mount-harness';
import type { FuseHandlers } from './types';

const BIG_INO = 2n ** 40n + 12345n;
const NOT_UTF8 = Buffer.from([0x6e, 0xe9, 0xff, 0x80]);
const TARGET = Buffer.from([0x2e, 0x2e, 0x2f, 0xfe, 0x01, 0x20, 0x7f, 0xc3]);
const MTIME_NS = 1_234_567_890_987_654_321n; // 2009-02-13 23:31:30.987654321 UTC
const MANY = 2000;

describe('a toy filesystem mounted by FuseSession, read by other processes', { skip: skipReason() }, () => {
  const toy = new ToyFs(1n);
  const big = randomBytes(3 * 1024 * 1024 + 4321);
  const bigXattr = randomBytes(300);
  const errors: unknown[] = [];
  const readSizes: number[] = [];
  let session: FuseSession | undefined;
  let mnt: ReturnType<typeof tempMountpoint> | undefined;
  let root = '';

  before(async () => {
    const docs = toy.mkdir(1n, 'docs', { ino: BIG_INO });
    const readme = toy.file(docs.ino, 'readme', Buffer.from('hello\n'), { attr: { mtimeNs: MTIME_NS, atimeNs: MTIME_NS - 1n } });
    toy.file(1n, NOT_UTF8, Buffer.from('not utf-8\n'));
    toy.file(1n, 'big.bin', big);
    toy.symlink(1n, 'link', TARGET);
    const tagged = toy.file(1n, 'tagged', Buffer.from('x'));
    tagged.xattrs.push(
      [Buffer.from('user.small'), Buffer.from('v')],
      [Buffer.from('user.big'), bigXattr],
      [Buffer.from('user.empty'), Buffer.alloc(0)],
    );
    const many = toy.mkdir(1n, 'many');
    for (let i = 0; i < MANY; i++) toy.file(many.ino, `f${String(i).padStart(4, '0')}`, Buffer.alloc(0));

    const base = toy.handlers();
    const handlers: FuseHandlers = {
      ...base,
      lookup: (parent, name, caller) => {
        if (name.toString() === 'boom') throw new Error('handler bug');
        if (name.toString() === 'later') {
          return new Promise((resolve) => setTimeout(() => resolve(toy.entry(readme.ino)), 30));
        }
        return base.lookup(parent, name, caller);
      },
      read: (ino, fh, offset, size, caller) => {
        readSizes.push(size);
        return base.read(ino, fh, offset, size, caller);
      },
    };
    mnt = tempMountpoint();
    root = mnt.path;
    session = await FuseSession.mount(root, handlers, {
      rootAttr: toy.nodes.get(1n)?.attr,
      onError: (err) => errors.push(err),
    });
  });

  after(() => cleanUp(session, mnt));

  it('negotiates 1 MiB requests and READDIRPLUS', () => {
    const stats = session?.stats();
    assert.equal(stats?.maxPages, 256);
    assert.ok(((stats?.initFlags ?? 0) & (1 << 13)) !== 0, 'FUSE_DO_READDIRPLUS');
  });

  it('lists a name that is not UTF-8 and opens it', async () => {
    const r = await runNode(
      `const fs = require('fs');
       const dir = Buffer.from(process.argv[1] + '/');
       const names = fs.readdirSync(dir, { encoding: 'buffer' });
       const odd = names.find((n) => n.equals(Buffer.from(process.argv[2], 'hex')));
       process.stdout.write(JSON.stringify({ names: names.map((n) => n.toString('hex')),
         data: fs.readFileSync(Buffer.concat([dir, odd])).toString() }));`,
      [root, NOT_UTF8.toString('hex')],
    );
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.toString()) as { names: string[]; data: string };
    assert.ok(out.names.includes(NOT_UTF8.toString('hex')));
    assert.equal(out.data, 'not utf-8\n');
  });

  it('reports st_ino above 2^32 exactly and times with nanoseconds', async () => {
    const dir = await run('stat', ['-c', '%i', join(root, 'docs')]);
    assert.equal(dir.stdout.toString().trim(), BIG_INO.toString());
    const file = await run('stat', ['-c', '%y|%x', join(root, 'docs', 'readme')]);
    assert.equal(file.stdout.toString().trim(), '2009-02-13 23:31:30.987654321 +0000|2009-02-13 23:31:30.987654320 +0000');
  });

  it('reads a 3 MiB file back byte for byte, with requests up to 1 MiB', async () => {
    readSizes.length = 0;
    const r = await run('cat', [join(root, 'big.bin')]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.equals(big), 'content differs');
    // Buffered: the kernel's readahead, raised after INIT to the largest request (FUSE offers only 128 KiB), sizes them.
    assert.equal(session?.readaheadKb, 1024);
    assert.equal(Math.max(...readSizes), 1 << 20, `buffered READs of at most ${Math.max(...readSizes)} bytes`);
    readSizes.length = 0;
    const direct = await run('dd', [`if=${join(root, 'big.bin')}`, 'of=/dev/null', 'bs=1M', 'iflag=direct']);
    assert.equal(direct.status, 0, direct.stderr);
    assert.equal(Math.max(...readSizes), 1 << 20);
  });

  it('reads a symlink target made of arbitrary bytes', async () => {
    const r = await run('readlink', [join(root, 'link')]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.equals(Buffer.concat([TARGET, Buffer.from('\n')])), r.stdout.toString('hex'));
  });

  it('lists and reads xattrs with the size probe', async () => {
    const r = await run('getfattr', ['-d', '-e', 'hex', join(root, 'tagged')]);
    assert.equal(r.status, 0, r.stderr);
    const text = r.stdout.toString();
    assert.match(text, /^user\.small=0x76$/m);
    assert.match(text, new RegExp(`^user\\.big=0x${bigXattr.toString('hex')}$`, 'm'));
    assert.match(text, /^user\.empty=0x$/m);
    const missing = await run('getfattr', ['-n', 'user.nope', join(root, 'tagged')]);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /No such attribute/);
  });

  it('answers ERANGE to a buffer too small for the value', { skip: !existsSync('/usr/bin/python3') && 'no python3' }, async () => {
    // os.getxattr asks with 128 bytes first and retries larger only on ERANGE.
    const r = await run('/usr/bin/python3', [
      '-c',
      'import os, sys\nprint(os.getxattr(sys.argv[1], "user.big").hex())\nprint(len(os.listxattr(sys.argv[1])))',
      join(root, 'tagged'),
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString(), `${bigXattr.toString('hex')}\n3\n`);
  });

  it('refuses every write with EROFS', async () => {
    const r = await runNode(
      `const fs = require('fs'); const p = require('path'); const d = process.argv[1];
       const tries = {
         create: () => fs.writeFileSync(p.join(d, 'new'), 'x'),
         writeOpen: () => fs.openSync(p.join(d, 'tagged'), 'r+'),
         mkdir: () => fs.mkdirSync(p.join(d, 'newdir')),
         unlink: () => fs.unlinkSync(p.join(d, 'tagged')),
         rename: () => fs.renameSync(p.join(d, 'tagged'), p.join(d, 'moved')),
         symlink: () => fs.symlinkSync('x', p.join(d, 'sl')),
         chmod: () => fs.chmodSync(p.join(d, 'tagged'), 0o600),
         truncate: () => fs.truncateSync(p.join(d, 'tagged'), 0),
         rmdir: () => fs.rmdirSync(p.join(d, 'docs')),
       };
       const codes = {};
       for (const [k, f] of Object.entries(tries)) { try { f(); codes[k] = 'ok'; } catch (e) { codes[k] = e.code; } }
       process.stdout.write(JSON.stringify(codes));`,
      [root],
    );
    assert.equal(r.status, 0, r.stderr);
    const codes = JSON.parse(r.stdout.toString()) as Record<string, string>;
    for (const [op, code] of Object.entries(codes)) assert.equal(code, 'EROFS', op);
  });

  it('reports ENOENT for a missing name', async () => {
    const r = await runNode(
      `try { require('fs').statSync(process.argv[1]); } catch (e) { process.stdout.write(e.code); }`,
      [join(root, 'docs', 'missing')],
    );
    assert.equal(r.stdout.toString(), 'ENOENT');
  });

  it('reports statfs', async () => {
    const r = await run('stat', ['-f', '-c', '%b %f %a %c %d %S %l', root]);
    assert.equal(r.stdout.toString().trim(), '1000 400 300 5000 4000 4096 255');
  });

  it('pages a listing of 2000 names from one readdir answer', async () => {
    const before = toy.called('readdir');
    const r = await run('ls', ['-f', join(root, 'many')]);
    assert.equal(r.status, 0, r.stderr);
    const names = r.stdout.toString().trim().split('\n').sort();
    assert.equal(names.length, MANY + 2);
    assert.deepEqual(names.slice(0, 3), ['.', '..', 'f0000']);
    assert.equal(names.at(-1), `f${MANY - 1}`);
    assert.equal(toy.called('readdir') - before, 1);
  });

  it('answers EIO when a handler throws, and reports it', async () => {
    const r = await runNode(`try { require('fs').statSync(process.argv[1]); } catch (e) { process.stdout.write(e.code); }`, [
      join(root, 'boom'),
    ]);
    assert.equal(r.stdout.toString(), 'EIO');
    assert.ok(errors.some((e) => e instanceof Error && e.message === 'handler bug'));
  });

  it('waits for a handler that answers with a promise', async () => {
    const r = await run('cat', [join(root, 'later')]);
    assert.equal(r.stdout.toString(), 'hello\n');
  });
});
