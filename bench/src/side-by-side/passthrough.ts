import { close, open, read, promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import Fuse from 'fuse-native';
import { fuseOptionList } from '@strata/agent-control';

/**
 * The floor of any Node FUSE process: fuse-native serving a directory (the
 * kernel's merged overlay mount) with plain node:fs calls and no caches of
 * its own, mounted with the same kernel options strata uses for a sealed
 * layer. `node passthrough.js SOURCE MOUNTPOINT`; SIGTERM unmounts.
 */
const [source, mountpoint] = process.argv.slice(2);

function errno(err: unknown): number {
  const n = (err as NodeJS.ErrnoException).errno;
  return typeof n === 'number' ? n : -5;
}

function stat(st: Stats): Fuse.Stat {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    dev: 0,
    nlink: st.nlink,
    ino: st.ino,
    rdev: st.rdev,
    blksize: st.blksize,
    blocks: st.blocks,
    atime: st.atimeMs,
    mtime: st.mtimeMs,
    ctime: st.ctimeMs,
  };
}

const real = (p: string): string => path.join(source, p);

const ops: Fuse.Ops = {
  getattr: (p, cb) => void fs.lstat(real(p)).then((st) => cb(0, stat(st)), (e: unknown) => cb(errno(e))),
  readdir: (p, cb) =>
    void (async () => {
      const names = await fs.readdir(real(p));
      const stats = await Promise.all(names.map((n) => fs.lstat(path.join(real(p), n))));
      cb(0, names, stats.map(stat));
    })().catch((e: unknown) => cb(errno(e))),
  readlink: (p, cb) => void fs.readlink(real(p)).then((t) => cb(0, t), (e: unknown) => cb(errno(e))),
  // The callback API: a FileHandle would be closed behind the kernel's back when garbage collected.
  open: (p, _flags, cb) => open(real(p), 'r', (err, fd) => (err ? cb(errno(err)) : cb(0, fd))),
  release: (_p, fd, cb) => close(fd, () => cb(0)),
  read: (_p, fd, buf, len, pos, cb) => read(fd, buf, 0, len, pos, (err, n) => cb(err ? errno(err) : n)),
};

class Passthrough extends Fuse {
  override _fuseOptions(): string {
    const o = fuseOptionList({ fsname: 'passthrough', subtype: 'passthrough', timeoutSeconds: 3600, keepPageCache: true, noExec: false, noSuid: false, noDev: false, maxReadahead: 1 << 20 });
    return `-o${o.join(',')}`;
  }
}

const fuse = new Passthrough(mountpoint, ops, { timeout: false });
fuse.mount((err) => {
  if (err) {
    process.stderr.write(`passthrough: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('mounted\n');
});
process.on('SIGTERM', () => process.exit(0));
