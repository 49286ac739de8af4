/**
 * Test support: fills a mounted filesystem with the cases the reader must
 * get right, through the kernel (node fs, and the standard tools for what
 * node cannot do: mknod, touch -d, setfattr, fallocate).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { run } from './fixture-image';

export interface FillOptions {
  /** Entries in big/ (an htree directory when large). */
  bigDir: number;
  /** Size of the sparse file (data written at a few offsets). */
  sparseBytes: number;
  /** Write a file with thousands of extents (extent tree depth >= 1). */
  fragmented: boolean;
  /** Timestamps past 2038 need 256-byte inodes. */
  farFuture: boolean;
  /** Small directories and files for inline_data. */
  smallThings: boolean;
  /** Extent-mapped: fallocate (unwritten extents) and hole punching work. */
  extents: boolean;
  /** ea_inode: an xattr value too large for a block, kept in its own inode. */
  eaInode?: boolean;
}

/** Deterministic pseudo-random bytes, so failures reproduce. */
export function patternBytes(length: number, seed: string): Buffer {
  const out = Buffer.alloc(length);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < length; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

async function makeSocket(p: string): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => resolve());
  });
  // Closing a listening unix socket leaves its node in the filesystem, which is all the test needs.
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function b(...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((x) => (typeof x === 'string' ? Buffer.from(x) : x)));
}

/** The VFS (getxattr) form of an ACL: version 2, then tag/perm/id entries. */
function vfsAcl(entries: [number, number, number][]): string {
  const buf = Buffer.alloc(4 + entries.length * 8);
  buf.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    buf.writeUInt16LE(tag, 4 + i * 8);
    buf.writeUInt16LE(perm, 6 + i * 8);
    buf.writeUInt32LE(id >>> 0, 8 + i * 8);
  });
  return '0s' + buf.toString('base64');
}

export async function fillTree(mnt: string, opts: FillOptions): Promise<void> {
  const p = (...parts: string[]): string => path.join(mnt, ...parts);
  await fsp.mkdir(p('files'));
  for (const size of [0, 1, 59, 60, 61, 1000, 1023, 1024, 1025, 4095, 4096, 4097, 65536, 100_000, 1_048_579, 3_000_000]) {
    await fsp.writeFile(p('files', `f${size}`), patternBytes(size, `f${size}`));
  }
  await fsp.writeFile(p('files', 'empty'), '');

  // Sparse: data at a few offsets, holes between, size at the end.
  const sparse = await fsp.open(p('files', 'sparse'), 'w');
  for (const off of [0, 5 * 4096 + 17, Math.floor(opts.sparseBytes / 2), opts.sparseBytes - 10]) {
    await sparse.write(patternBytes(10, `s${off}`), 0, 10, off);
  }
  await sparse.close();

  if (opts.fragmented) {
    // Every other 4 KiB block written: each one its own extent, thousands of them, so the tree grows index levels.
    const frag = await fsp.open(p('files', 'fragmented'), 'w');
    const blk = patternBytes(4096, 'frag');
    for (let i = 0; i < 3000; i++) await frag.write(blk, 0, 4096, i * 8192);
    await frag.close();
  }
  if (opts.extents) {
    // Unwritten extents: preallocated, partly written.
    run('fallocate', ['-l', '1048576', p('files', 'prealloc')]);
    run('fallocate', ['-l', '262144', p('files', 'prealloc-partly')]);
    const part = await fsp.open(p('files', 'prealloc-partly'), 'r+');
    await part.write(patternBytes(5000, 'partly'), 0, 5000, 70_000);
    await part.close();
    run('fallocate', ['-p', '-o', '8192', '-l', '16384', p('files', 'f100000')]);
  }

  await fsp.mkdir(p('links'));
  await fsp.link(p('files', 'f1000'), p('links', 'hard1'));
  await fsp.link(p('files', 'f1000'), p('links', 'hard2'));
  await fsp.symlink('short/target', p('links', 'fast'));
  await fsp.symlink('x'.repeat(59), p('links', 'fast59'));
  await fsp.symlink('y'.repeat(60), p('links', 'slow60'));
  await fsp.symlink('long/'.repeat(200) + 'end', p('links', 'slow'));
  await fsp.symlink(b('bin', Buffer.from([0xe9, 0xff])), b(p('links'), '/nonutf8link'));

  await fsp.mkdir(p('dev'));
  run('mknod', [p('dev', 'null'), 'c', '1', '3']);
  run('mknod', [p('dev', 'sda1'), 'b', '8', '1']);
  run('mknod', [p('dev', 'bigc'), 'c', '300', '70000']);
  run('mknod', [p('dev', 'bigb'), 'b', '4095', '1048575']);
  run('mknod', [p('dev', 'fifo'), 'p']);
  await makeSocket(p('dev', 'sock'));

  await fsp.mkdir(p('names'));
  await fsp.writeFile(p('names', 'n'.repeat(255)), 'long name');
  await fsp.writeFile(b(p('names'), '/', Buffer.from([0x66, 0xff, 0xfe, 0x80, 0x41])), 'latin');
  await fsp.writeFile(b(p('names'), '/', 'caf', Buffer.from([0xe9])), 'cafe');
  await fsp.writeFile(p('names', 'ünïcødé ✓'), 'utf8');
  await fsp.writeFile(p('names', 'with space'), '');

  let deep = p('deep');
  for (let i = 0; i < 40; i++) {
    deep = path.join(deep, `d${i}`);
  }
  await fsp.mkdir(deep, { recursive: true });
  await fsp.writeFile(path.join(deep, 'bottom'), 'bottom');

  await fsp.mkdir(p('owners'));
  await fsp.writeFile(p('owners', 'big-ids'), 'ids');
  await fsp.chown(p('owners', 'big-ids'), 70000, 100000);
  await fsp.writeFile(p('owners', 'modes'), 'm');
  await fsp.chmod(p('owners', 'modes'), 0o4751);
  await fsp.mkdir(p('owners', 'sticky'), { mode: 0o1777 });
  await fsp.chmod(p('owners', 'sticky'), 0o1777);

  await fsp.mkdir(p('times'));
  const stamps = ['1960-05-01 12:00:00.123456789', '1969-12-31 23:59:59.999999999', '1970-01-01 00:00:00', '2001-09-09 01:46:40.5'];
  if (opts.farFuture) stamps.push('2038-01-19 03:14:08.000000001', '2100-01-01 00:00:00.987654321', '2400-02-29 12:00:00.1');
  stamps.forEach((s, i) => {
    const f = p('times', `t${i}`);
    run('touch', ['-d', s, f]);
    run('touch', ['-a', '-d', stamps[(i + 1) % stamps.length], f]);
  });
  await fsp.symlink('t0', p('times', 'link'));
  run('touch', ['-h', '-d', stamps[0], p('times', 'link')]);

  await fsp.mkdir(p('xattrs'));
  const x = p('xattrs', 'many');
  await fsp.writeFile(x, 'x');
  run('setfattr', ['-n', 'user.small', '-v', 'hello', x]);
  run('setfattr', ['-n', 'user.empty', x]);
  run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', x]);
  run('setfattr', ['-n', 'security.test', '-v', '0x' + patternBytes(40, 'sec').toString('hex'), x]);
  run('setfattr', ['-n', 'user.big', '-v', '0x' + patternBytes(600, 'big').toString('hex'), x]);
  const big = p('xattrs', 'block');
  await fsp.writeFile(big, 'b');
  run('setfattr', ['-n', 'user.block1', '-v', '0x' + patternBytes(500, 'b1').toString('hex'), big]);
  run('setfattr', ['-n', 'user.block2', '-v', '0x' + patternBytes(300, 'b2').toString('hex'), big]);
  await fsp.mkdir(p('xattrs', 'dir'));
  run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p('xattrs', 'dir')]);
  await fsp.symlink('t', p('xattrs', 'link'));
  run('setfattr', ['-h', '-n', 'trusted.link', '-v', 'l', p('xattrs', 'link')]);
  // ACL_USER_OBJ, ACL_USER 1000, ACL_GROUP_OBJ, ACL_GROUP 2000, ACL_MASK, ACL_OTHER.
  const acl = vfsAcl([[1, 7, -1], [2, 6, 1000], [4, 5, -1], [8, 4, 2000], [0x10, 6, -1], [0x20, 4, -1]]);
  await fsp.writeFile(p('xattrs', 'acl'), 'acl');
  run('setfattr', ['-n', 'system.posix_acl_access', '-v', acl, p('xattrs', 'acl')]);
  await fsp.mkdir(p('xattrs', 'acldir'));
  run('setfattr', ['-n', 'system.posix_acl_default', '-v', vfsAcl([[1, 7, -1], [4, 5, -1], [0x20, 0, -1]]), p('xattrs', 'acldir')]);

  if (opts.eaInode) {
    run('setfattr', ['-n', 'user.huge', '-v', '0x' + patternBytes(20_000, 'huge').toString('hex'), p('xattrs', 'many')]);
  }

  if (opts.smallThings) {
    await fsp.mkdir(p('small'));
    for (let i = 0; i < 8; i++) {
      await fsp.mkdir(p('small', `d${i}`));
      for (let j = 0; j < i; j++) await fsp.writeFile(p('small', `d${i}`, `f${j}`), patternBytes(j * 20, `small${i}${j}`));
    }
    await fsp.writeFile(p('small', 'tiny'), 'tiny');
    await fsp.writeFile(p('small', 'exactly60'), patternBytes(60, 'e60'));
    await fsp.writeFile(p('small', 'overflow'), patternBytes(100, 'ovf'));
    await fsp.symlink('z'.repeat(100), p('small', 'inline-symlink'));
  }

  await fsp.mkdir(p('big'));
  for (let i = 0; i < opts.bigDir; i++) {
    await fsp.writeFile(b(p('big'), '/', bigDirName(i)), '');
  }
}

/** Entry i of big/: some names with high bytes, so signed and unsigned hashing differ. */
export function bigDirName(i: number): Buffer {
  return i % 7 === 0 ? Buffer.concat([Buffer.from(`entry-${i}-`), Buffer.from([0xc0 + (i % 50)])]) : Buffer.from(`entry-number-${i}`);
}
