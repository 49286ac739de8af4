import type Fuse from 'fuse-native';
import { Errno, StrataError } from '@strata/errors';
import type { MountFs } from '../mount/mount-fs';
import type { OpTracker } from '../observability/op-tracker';
import { toFuseStat, toFuseStatFs } from './stat';


function errnoOf(err: unknown): number {
  return StrataError.from(err).errno;
}

/** fuse-native paths arrive as JS strings decoded from UTF-8. */
function bytes(p: string): Buffer {
  return Buffer.from(p, 'utf8');
}

/**
 * fuse-native passes names as UTF-8 strings both ways, so a name that is not
 * valid UTF-8 cannot be looked up through it: such names are left out of
 * listings instead of being shown mangled.
 */
function utf8Name(name: Buffer): string | undefined {
  const s = name.toString('utf8');
  return Buffer.byteLength(s) === name.length && Buffer.from(s, 'utf8').equals(name) ? s : undefined;
}

/**
 * The FUSE operations of one mount. Every write-like operation answers
 * EROFS (the mount is also `ro`, so the kernel normally refuses first).
 * Answers that are already cached go back without waiting a tick.
 */
export function fuseHandlers(fs: MountFs, tracker: OpTracker): Fuse.Ops {
  const t = tracker;
  // Outages are told by the agent's session wrapper (OutageMonitor), which alone knows whether a resolver answered.
  const fail = (_op: string, err: unknown): number => -errnoOf(err);
  const erofs = (...args: unknown[]): void => {
    const cb = args[args.length - 1] as (code: number) => void;
    cb(-Errno.EROFS);
  };

  return {
    getattr(p, cb) {
      const path = bytes(p);
      const hit = fs.cachedStat(path);
      if (hit) {
        if (t.active) t.instant('getattr');
        return 'attr' in hit ? cb(0, toFuseStat(hit.attr)) : cb(-hit.errno);
      }
      t.run('getattr', p, () => fs.stat(path)).then(
        (a) => {
          cb(0, toFuseStat(a));
        },
        (err: unknown) => cb(fail('getattr', err)),
      );
    },
    readdir(p, cb) {
      const path = bytes(p);
      t.run('readdir', p, () => fs.readdir(path))
        .then(async (l) => {
          const parent = p === '/' ? l.dir : await fs.parentStat(path);
          const names = ['.', '..'];
          const stats = [toFuseStat(l.dir), toFuseStat(parent)];
          for (const e of l.entries) {
            const name = utf8Name(e.name);
            if (name === undefined || !e.attr) continue;
            names.push(name);
            stats.push(toFuseStat(e.attr));
          }
          cb(0, names, stats);
        })
        .catch((err: unknown) => cb(fail('readdir', err)));
    },
    readlink(p, cb) {
      t.run('readlink', p, () => fs.readlink(bytes(p))).then(
        (target) => {
          const s = utf8Name(target);
          // A target that is not UTF-8 cannot pass fuse-native unchanged; a mangled one would lead elsewhere.
          cb(s === undefined ? -Errno.EIO : 0, s);
        },
        (err: unknown) => cb(fail('readlink', err)),
      );
    },
    // No open or release: libfuse answers them without a trip to this thread (the mount is ro, so the kernel refuses writers first).
    read(p, _fd, buf, len, pos, cb) {
      t.run('read', p, () => fs.read(bytes(p), buf, pos, len)).then(
        (n) => cb(n),
        (err: unknown) => cb(fail('read', err)),
      );
    },
    statfs(p, cb) {
      t.run('statfs', p, () => fs.statfs()).then(
        (s) => cb(0, toFuseStatFs(s)),
        (err: unknown) => cb(fail('statfs', err)),
      );
    },
    getxattr(p, name, _position, cb) {
      t.run('getxattr', p, () => fs.getXattr(bytes(p), name)).then(
        (v) => cb(0, v),
        (err: unknown) => cb(fail('getxattr', err)),
      );
    },
    listxattr(p, cb) {
      t.run('listxattr', p, () => fs.listXattr(bytes(p))).then(
        (names) => cb(0, names),
        (err: unknown) => cb(fail('listxattr', err)),
      );
    },
    write: erofs,
    create: erofs,
    truncate: erofs,
    ftruncate: erofs,
    chmod: erofs,
    chown: erofs,
    utimens: erofs,
    mknod: erofs,
    mkdir: erofs,
    rmdir: erofs,
    unlink: erofs,
    rename: erofs,
    link: erofs,
    symlink: erofs,
    setxattr: erofs,
    removexattr: erofs,
  };
}
