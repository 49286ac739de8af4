import * as fs from 'node:fs';
import * as path from 'node:path';
import { S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from '@strata/posix';
import { lsetxattr, makedev, mknod } from './sysops';

type P = string | Buffer;

interface Meta {
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch, fractional allowed. */
  mtime?: number;
  xattrs?: Record<string, string>;
}

export type FixtureEntry =
  | ({ type: 'file'; path: P; content?: string | Buffer; size?: number; writeAt?: { offset: number; data: string }[] } & Meta)
  | ({ type: 'dir'; path: P; opaque?: boolean } & Meta)
  | { type: 'symlink'; path: P; target: P; mtime?: number }
  | { type: 'hardlink'; path: P; existing: P }
  | { type: 'whiteout'; path: P }
  | ({ type: 'fifo' | 'socket'; path: P } & Meta)
  | ({ type: 'chardev' | 'blockdev'; path: P; major: number; minor: number } & Meta);

export interface LayerSpec {
  entries: FixtureEntry[];
}

/**
 * How whiteouts and opaque directories are written on disk:
 * - trusted: the kernel's own (char device 0/0, trusted.overlay.opaque=y);
 * - user: char device 0/0 and user.overlay.opaque=y (kernel mount option userxattr);
 * - oci: ".wh.<name>" files and ".wh..wh..opq" markers, which the kernel does not know.
 */
export type Spelling = 'trusted' | 'user' | 'oci';

const DEFAULT_DIR_MTIME = 1_600_000_000.25;
const DEFAULT_FILE_MTIME = 1_650_000_000.5;

function buf(p: P): Buffer {
  return typeof p === 'string' ? Buffer.from(p) : p;
}

function join(root: Buffer, rel: P): Buffer {
  const r = buf(rel);
  return Buffer.concat([root, Buffer.from('/'), r[0] === 0x2f ? r.subarray(1) : r]);
}

function parentOf(p: Buffer): Buffer {
  const i = p.lastIndexOf(0x2f);
  return p.subarray(0, i);
}

function baseOf(p: Buffer): Buffer {
  return p.subarray(p.lastIndexOf(0x2f) + 1);
}

function mkdirp(p: Buffer): void {
  fs.mkdirSync(p, { recursive: true });
}

function applyMeta(p: Buffer, meta: Meta, defaultMtime: number): void {
  if (meta.xattrs) for (const [k, v] of Object.entries(meta.xattrs)) lsetxattr(p, k, Buffer.from(v));
  if (meta.uid !== undefined || meta.gid !== undefined) fs.lchownSync(p, meta.uid ?? 0, meta.gid ?? 0);
  if (meta.mode !== undefined) fs.chmodSync(p, meta.mode);
  const t = meta.mtime ?? defaultMtime;
  fs.lutimesSync(p, t, t);
}

/** Writes one layer directory in the given spelling. */
export function writeLayer(dir: string, spec: LayerSpec, spelling: Spelling): void {
  const root = Buffer.from(dir);
  mkdirp(root);
  const dirs: { p: Buffer; meta: Meta }[] = [{ p: root, meta: {} }];
  for (const e of spec.entries) {
    const p = join(root, e.path);
    mkdirp(parentOf(p));
    switch (e.type) {
      case 'file': {
        fs.writeFileSync(p, e.content ?? '');
        if (e.size !== undefined) fs.truncateSync(p, e.size);
        if (e.writeAt) {
          const fd = fs.openSync(p, 'r+');
          for (const w of e.writeAt) fs.writeSync(fd, Buffer.from(w.data), 0, w.data.length, w.offset);
          fs.closeSync(fd);
        }
        applyMeta(p, e, DEFAULT_FILE_MTIME);
        break;
      }
      case 'dir':
        mkdirp(p);
        if (e.opaque) {
          if (spelling === 'oci') fs.writeFileSync(join(p, '.wh..wh..opq'), '');
          else lsetxattr(p, spelling === 'trusted' ? 'trusted.overlay.opaque' : 'user.overlay.opaque', Buffer.from('y'));
        }
        dirs.push({ p, meta: e });
        break;
      case 'symlink':
        fs.symlinkSync(buf(e.target), p);
        fs.lutimesSync(p, e.mtime ?? DEFAULT_FILE_MTIME, e.mtime ?? DEFAULT_FILE_MTIME);
        break;
      case 'hardlink':
        fs.linkSync(join(root, e.existing), p);
        break;
      case 'whiteout':
        if (spelling === 'oci') {
          const wh = Buffer.concat([parentOf(p), Buffer.from('/.wh.'), baseOf(p)]);
          fs.writeFileSync(wh, '');
        } else {
          mknod(p, S_IFCHR | 0o000, 0n);
        }
        break;
      case 'fifo':
      case 'socket':
        mknod(p, (e.type === 'fifo' ? S_IFIFO : S_IFSOCK) | (e.mode ?? 0o644));
        applyMeta(p, e, DEFAULT_FILE_MTIME);
        break;
      case 'chardev':
      case 'blockdev':
        mknod(p, (e.type === 'chardev' ? S_IFCHR : S_IFBLK) | (e.mode ?? 0o600), makedev(e.major, e.minor));
        applyMeta(p, e, DEFAULT_FILE_MTIME);
        break;
    }
  }
  // Directory times last, children before parents, so creating entries does not move them.
  const walk = (d: Buffer): void => {
    for (const name of fs.readdirSync(d, { encoding: 'buffer' })) {
      const c = Buffer.concat([d, Buffer.from('/'), name]);
      if (fs.lstatSync(c).isDirectory()) walk(c);
    }
    applyMeta(d, dirs.find((x) => x.p.equals(d))?.meta ?? {}, DEFAULT_DIR_MTIME);
  };
  walk(root);
}

/** Writes a stack (bottom layer first) under root as folders "0", "1", ...; returns their names top first. */
export function writeStack(root: string, layers: LayerSpec[], spelling: Spelling): string[] {
  const names = layers.map((_, i) => String(i));
  layers.forEach((spec, i) => writeLayer(path.join(root, names[i]), spec, spelling));
  return names.reverse();
}
