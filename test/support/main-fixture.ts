import type { LayerSpec } from '@strata/harness';

const GiB = 2 ** 30;

/** Names with any bytes but '/' and NUL. */
export const ODD_NAMES: Buffer[] = [
  Buffer.from([0x01, 0x63, 0x74, 0x6c]),
  Buffer.from([0xff, 0xfe, 0x80]),
  Buffer.from('new\nline'),
  Buffer.from('back\\slash'),
  Buffer.from('space name '),
  Buffer.from('ünïcödé ✓'),
  Buffer.from('x'.repeat(255)),
];

function odd(name: Buffer): Buffer {
  return Buffer.concat([Buffer.from('/names/'), name]);
}

/**
 * A four-layer stack (bottom first) with every case of the foundation issue:
 * whiteouts of files, directories and hardlinks, opaque directories, a
 * non-directory hiding a directory and the other way round, stray whiteouts,
 * hardlinks, symlinks of every kind, device nodes, fifos and sockets, a
 * sparse file reaching past 4 GiB, odd names, xattrs, owners and modes.
 */
export function mainStack(): LayerSpec[] {
  const base: LayerSpec = {
    entries: [
      { type: 'file', path: '/etc/hostname', content: 'base-host\n' },
      { type: 'file', path: '/etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644 },
      { type: 'file', path: '/etc/shadow', content: 'root:*:1::::::\n', mode: 0o640, uid: 0, gid: 42 },
      { type: 'file', path: '/etc/gone', content: 'deleted later\n' },
      { type: 'dir', path: '/etc/ssh', mode: 0o755 },
      { type: 'file', path: '/etc/ssh/ssh_config', content: 'Host *\n' },
      { type: 'file', path: '/etc/ssh/moduli', content: 'moduli\n', mtime: 1_500_000_000 },
      { type: 'file', path: '/opt/app/bin/run', content: '#!/bin/sh\necho run\n', mode: 0o755 },
      { type: 'file', path: '/opt/app/lib/a.so', content: 'a' },
      { type: 'file', path: '/opt/app/lib/b.so', content: 'b' },
      { type: 'file', path: '/var/log/syslog', content: 'log line\n', uid: 104, gid: 4 },
      { type: 'file', path: '/var/log/old.log', content: 'old\n' },
      { type: 'file', path: '/data/hard1', content: 'shared inode\n' },
      { type: 'hardlink', path: '/data/hard2', existing: '/data/hard1' },
      { type: 'hardlink', path: '/data/hard3', existing: '/data/hard1' },
      { type: 'chardev', path: '/dev/null', major: 1, minor: 3, mode: 0o666 },
      { type: 'blockdev', path: '/dev/loop0', major: 7, minor: 0, mode: 0o660, gid: 6 },
      { type: 'fifo', path: '/dev/initctl', mode: 0o600 },
      { type: 'socket', path: '/run/sock', mode: 0o755 },
      { type: 'symlink', path: '/links/rel', target: '../etc/hostname' },
      { type: 'symlink', path: '/links/abs', target: '/etc/passwd' },
      { type: 'symlink', path: '/links/dangling', target: '/nope/nothing' },
      { type: 'symlink', path: '/links/dir', target: '/etc/ssh' },
      { type: 'symlink', path: '/links/reldir', target: '../etc/ssh' },
      { type: 'symlink', path: '/links/reldangling', target: '../nope/nothing' },
      { type: 'symlink', path: '/links/loop1', target: 'loop2' },
      { type: 'symlink', path: '/links/loop2', target: 'loop1' },
      { type: 'symlink', path: '/links/odd', target: Buffer.from([0x2e, 0x2e, 0x2f, 0xff, 0x20, 0x0a]) },
      { type: 'file', path: '/big/sparse', size: 5 * GiB, writeAt: [{ offset: 0, data: 'head' }, { offset: 4 * GiB + 123, data: 'past-4GiB' }, { offset: 5 * GiB - 5, data: 'tail!' }] },
      ...ODD_NAMES.map((n, i) => ({ type: 'file' as const, path: odd(n), content: `odd ${i}\n` })),
      { type: 'file', path: '/xattr/file', content: 'x', xattrs: { 'user.comment': 'hello', 'user.binary': '\u0001\u0002', 'trusted.app': 'secret' } },
      { type: 'file', path: '/replace/file-to-dir', content: 'was a file' },
      { type: 'file', path: '/replace/dir-to-file/child', content: 'was in a dir' },
      { type: 'file', path: '/deep/a/b/c/d/e/f/file', content: 'deep' },
      { type: 'file', path: '/lower-only/only', content: 'only in base' },
      { type: 'dir', path: '/empty' },
    ],
  };
  const snap1: LayerSpec = {
    entries: [
      { type: 'whiteout', path: '/etc/gone' },
      { type: 'file', path: '/etc/hostname', content: 'snap1-host\n', mtime: 1_700_000_000.125 },
      { type: 'file', path: '/etc/ssh/ssh_config', content: 'Host *\n  ForwardAgent no\n' },
      { type: 'whiteout', path: '/data/hard3' },
      { type: 'file', path: '/var/log/new.log', content: 'new\n' },
      // A time finer than a millisecond: timelines need every nanosecond the filesystem keeps.
      { type: 'file', path: '/var/log/fine.log', content: 'fine\n', mtime: 1_700_000_000.123457 },
      { type: 'whiteout', path: '/var/log/old.log' },
      { type: 'file', path: '/replace/file-to-dir/inner', content: 'now a dir' },
      { type: 'file', path: '/replace/dir-to-file', content: 'now a file' },
      { type: 'whiteout', path: '/onlyupper/ghost' },
      { type: 'file', path: '/onlyupper/real', content: 'real' },
      { type: 'dir', path: '/xattr/dir', xattrs: { 'user.tag': 'v1' } },
      { type: 'file', path: '/deep/a/b/c/new', content: 'new deep' },
      { type: 'file', path: '/names/' + 'added in snap1', content: 'added' },
    ],
  };
  const snap2: LayerSpec = {
    entries: [
      { type: 'dir', path: '/opt/app', opaque: true },
      { type: 'file', path: '/opt/app/bin/run2', content: 'run2', mode: 0o750 },
      { type: 'dir', path: '/var', mode: 0o711, xattrs: { 'user.var': '1' } },
      { type: 'whiteout', path: '/deep/a/b' },
      { type: 'whiteout', path: '/run' },
      { type: 'file', path: '/etc/ssh/moduli', content: 'moduli\n', mtime: 1_500_000_000 },
      { type: 'file', path: '/etc/passwd', content: 'root:x:0:0::/root:/bin/bash\n', mode: 0o644 },
    ],
  };
  const top: LayerSpec = {
    entries: [
      { type: 'file', path: '/deep/a/b/reborn', content: 'after a whiteout' },
      { type: 'symlink', path: '/etc/hostname', target: '/etc/passwd' },
      { type: 'file', path: '/opt/app/bin/run3', content: 'run3' },
      { type: 'whiteout', path: '/dev/null' },
      { type: 'dir', path: '/empty', opaque: true, mode: 0o700 },
      { type: 'file', path: '/xattr/file', content: 'y', xattrs: { 'user.comment': 'changed' } },
    ],
  };
  return [base, snap1, snap2, top];
}

/**
 * Paths probed for their errno (or success), compared with the kernel. Only
 * relative symlinks are followed here: the kernel resolves an absolute target
 * against the host's root, strata's API against the layer's.
 */
export const PROBES: string[] = [
  '/nope',
  '/etc/gone',
  '/etc/hostname/x',
  '/etc/passwd/x',
  '/deep/a/b/c',
  '/links/loop1/x',
  '/links/reldir/ssh_config',
  '/links/reldir/nope',
  '/links/rel',
  '/links/rel/x',
  '/links/reldangling/x',
  '/run/sock',
  '/onlyupper/ghost',
  '/opt/app/lib',
  '/opt/app/lib/a.so',
  '/data/hard3',
  '/dev/null',
  '/var/log/old.log',
  '/empty/x',
];
