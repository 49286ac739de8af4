import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, getXattr, listXattrs, type Attr, type Projection } from '@strata/traversal';

/** Everything the differential suite compares about one entry. */
export interface EntryInfo {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  nlink: number;
  rdev: number;
  mtimeNs: bigint;
  ino: number;
  xattrs: string;
  link?: string;
  content?: string;
}

/** Path (latin1, byte-exact) → info. */
export type Tree = Map<string, EntryInfo>;

/** Files larger than this are compared in windows (a 5 GiB sparse file is not hashed whole). */
const WHOLE_HASH_LIMIT = 64 * 1024 * 1024;
const WINDOW = 1 << 20;

export function windowsOf(size: number): [number, number][] {
  if (size <= WHOLE_HASH_LIMIT) return [[0, size]];
  const fourG = 2 ** 32;
  return [
    [0, WINDOW],
    [fourG - WINDOW / 2, WINDOW],
    [size - WINDOW, WINDOW],
  ];
}

function xattrText(names: string[], get: (n: string) => Buffer | undefined): string {
  return names
    .sort()
    .map((n) => `${n}=${get(n)?.toString('hex') ?? '?'}`)
    .join(',');
}

const NS = 1_000_000_000n;

function fromBigStats(st: fs.BigIntStats): Omit<EntryInfo, 'xattrs'> {
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    blocks: Number(st.blocks),
    nlink: Number(st.nlink),
    rdev: Number(st.rdev),
    mtimeNs: st.mtimeNs,
    ino: Number(st.ino),
  };
}

function fromAttr(a: Attr): Omit<EntryInfo, 'xattrs'> {
  return {
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    blocks: a.blocks,
    nlink: a.nlink,
    rdev: a.rdev,
    mtimeNs: BigInt(a.mtimeSec) * NS + BigInt(a.mtimeNsec),
    ino: a.ino,
  };
}

function join(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 && dir[0] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, Buffer.from('/'), name]);
}

/**
 * Reads a kernel mount with plain system calls. Names the kernel lists but
 * cannot look up (stray whiteouts in a directory only one layer supplies)
 * are left out: they are not files, and strata does not list them.
 */
export function readKernelTree(mountpoint: string, withContent = true, skip: (rel: Buffer) => boolean = () => false): Tree {
  const tree: Tree = new Map();
  const mnt = Buffer.from(mountpoint);
  const visit = (rel: Buffer): void => {
    if (skip(rel)) return;
    const real = rel.length === 1 ? mnt : Buffer.concat([mnt, rel]);
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(real, { bigint: true });
    } catch {
      return;
    }
    const info: EntryInfo = { ...fromBigStats(st), xattrs: xattrText(retryEintr(() => listXattrs(real)), (n) => retryEintr(() => getXattr(real, n))) };
    const type = info.mode & S_IFMT;
    if (type === S_IFLNK) info.link = fs.readlinkSync(real, { encoding: 'buffer' }).toString('hex');
    if (type === S_IFREG && withContent) {
      const h = createHash('sha256');
      const fd = fs.openSync(real, 'r');
      try {
        for (const [off, len] of windowsOf(info.size)) {
          const b = Buffer.alloc(len);
          let got = 0;
          while (got < len) {
            const n = fs.readSync(fd, b, got, len - got, off + got);
            if (n === 0) break;
            got += n;
          }
          h.update(b.subarray(0, got));
        }
      } finally {
        fs.closeSync(fd);
      }
      info.content = h.digest('hex');
    }
    tree.set(rel.toString('latin1'), info);
    if (type === S_IFDIR) {
      for (const name of fs.readdirSync(real, { encoding: 'buffer' })) visit(join(rel, name));
    }
  };
  visit(Buffer.from('/'));
  return tree;
}

/** EINTR, as libc retries it for read(2) but not for the xattr calls: a signal (Node 24 sends the main thread some) interrupts a FUSE request. */
const EINTR = 4;
const EINTR_RETRIES = 100;

function retryEintr<T>(call: () => T): T {
  for (let i = 0; ; i++) {
    try {
      return call();
    } catch (err) {
      if ((err as { errno?: unknown }).errno !== EINTR || i >= EINTR_RETRIES) throw err;
    }
  }
}

/** Reads the same through the engine: walk, then readlink, xattrs and reads per entry. */
/** What readEngineTree needs: the Projection itself, or the resolver's API seen through a client. */
export type TreeSource = Pick<Projection, 'walk' | 'listXattr' | 'getXattr' | 'readlink' | 'read'>;

export async function readEngineTree(p: TreeSource, withContent = true): Promise<Tree> {
  const tree: Tree = new Map();
  for await (const batch of p.walk('/', { includeLinkTargets: true })) {
    for (const e of batch) {
      const names = await p.listXattr(e.path);
      const values = new Map<string, Buffer>();
      for (const n of names) values.set(n, await p.getXattr(e.path, n));
      const info: EntryInfo = { ...fromAttr(e.attr), xattrs: xattrText(names, (n) => values.get(n)) };
      const type = info.mode & S_IFMT;
      if (type === S_IFLNK) info.link = (await p.readlink(e.path)).toString('hex');
      if (type === S_IFREG && withContent) {
        const h = createHash('sha256');
        for (const [off, len] of windowsOf(info.size)) {
          for (let pos = off; pos < off + len; ) {
            const r = await p.read(e.path, pos, Math.min(8 << 20, off + len - pos));
            h.update(r.data);
            pos += r.data.length;
            if (r.data.length === 0 || r.eof) break;
          }
        }
        info.content = h.digest('hex');
      }
      tree.set(e.path.toString('latin1'), info);
    }
  }
  return tree;
}

/** One walk, attributes only (no xattrs, link targets or content): a cheap poll of what the engine shows. */
export async function readEngineListing(p: Pick<TreeSource, 'walk'>): Promise<Tree> {
  const tree: Tree = new Map();
  for await (const batch of p.walk('/', {})) {
    for (const e of batch) tree.set(e.path.toString('latin1'), { ...fromAttr(e.attr), xattrs: '' });
  }
  return tree;
}

export type Field = keyof EntryInfo;
export const ALL_FIELDS: Field[] = ['mode', 'uid', 'gid', 'size', 'blocks', 'nlink', 'rdev', 'mtimeNs', 'ino', 'xattrs', 'link', 'content'];

/**
 * Differences between two trees, as readable lines (empty when equal).
 * `skip(path, info)` names fields that may legitimately differ for an entry.
 */
export function compareTrees(expected: Tree, actual: Tree, fields: Field[], skip: (path: string, info: EntryInfo) => Field[] = () => []): string[] {
  const out: string[] = [];
  const show = (p: string): string => JSON.stringify(Buffer.from(p, 'latin1').toString('utf8'));
  for (const p of expected.keys()) if (!actual.has(p)) out.push(`missing in strata: ${show(p)}`);
  for (const p of actual.keys()) if (!expected.has(p)) out.push(`only in strata: ${show(p)}`);
  for (const [p, e] of expected) {
    const a = actual.get(p);
    if (!a) continue;
    const skipped = new Set(skip(p, e));
    for (const f of fields) {
      if (skipped.has(f)) continue;
      if (e[f] !== a[f]) out.push(`${show(p)} ${f}: kernel ${String(e[f])} strata ${String(a[f])}`);
    }
  }
  return out;
}
