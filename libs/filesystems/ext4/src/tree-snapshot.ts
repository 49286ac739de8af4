/**
 * Test support: a snapshot of every path of a tree, taken once through the
 * kernel's read-only mount and once through the reader, in one comparable
 * shape (paths as hex of their bytes, since names need not be UTF-8).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, fileTypeOf } from '@strata/posix';
import { Ext4 } from './ext4';
import { run } from './fixture-image';

export interface PathSnapshot {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  rdev: number;
  blocks: number;
  blksize: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  crtimeNs?: bigint;
  /** Sorted hex names; directories only. */
  entries?: string[];
  link?: string;
  sha256?: string;
  xattrs: Record<string, string>;
}

export type TreeSnapshot = Map<string, PathSnapshot>;

const CHUNK = 1024 * 1024;

const ZERO_CHUNK = Buffer.alloc(CHUNK);

/**
 * sha256 of a file's content fed in 1 MiB chunks, an all-zero chunk fed as
 * a one-byte tag instead: still exact (chunks are compared byte for byte),
 * but a 2 GiB sparse file costs a memcmp per chunk rather than a hash.
 */
export class ContentDigest {
  private readonly hash = createHash('sha256');

  update(chunk: Buffer): void {
    if (chunk.length === CHUNK && chunk.equals(ZERO_CHUNK)) {
      this.hash.update(Buffer.from([0]));
    } else {
      this.hash.update(Buffer.from([1]));
      this.hash.update(chunk);
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/** getfattr sorts names; listxattr order is not part of the comparison. */
function sortedRecord(r: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

/** getfattr prints path bytes outside printable ASCII as \ooo. */
function unescapeGetfattr(s: string): Buffer {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length + 1 && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(raw[i]);
    }
  }
  return Buffer.from(bytes);
}

/** Every xattr under root as the kernel lists them: getfattr -R, not following symlinks. */
function kernelXattrs(root: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  const text = run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root]);
  let current: Record<string, string> | undefined;
  const rootBuf = Buffer.from(root);
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      const p = unescapeGetfattr(line.slice(8));
      current = {};
      out.set(p.subarray(rootBuf.length).toString('hex'), current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const value = line.slice(eq + 1);
      current[line.slice(0, eq)] = value.startsWith('0x') ? value.slice(2) : '';
    }
  }
  return out;
}

export async function kernelSnapshot(root: string): Promise<TreeSnapshot> {
  const snap: TreeSnapshot = new Map();
  const xattrs = kernelXattrs(root);
  const rootBuf = Buffer.from(root);
  const walk = async (p: Buffer): Promise<void> => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = p.subarray(rootBuf.length).toString('hex');
    const s: PathSnapshot = {
      ino: Number(st.ino),
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      nlink: Number(st.nlink),
      size: Number(st.size),
      rdev: Number(st.rdev),
      blocks: Number(st.blocks),
      blksize: Number(st.blksize),
      atimeNs: st.atimeNs,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
      crtimeNs: st.birthtimeNs,
      xattrs: sortedRecord(xattrs.get(rel) ?? {}),
    };
    snap.set(rel, s);
    const type = s.mode & S_IFMT;
    if (type === S_IFDIR) {
      const names = await fsp.readdir(p, { encoding: 'buffer' });
      s.entries = names.map((n) => n.toString('hex')).sort();
      for (const n of names) await walk(join(p, n));
    } else if (type === S_IFLNK) {
      s.link = (await fsp.readlink(p, { encoding: 'buffer' })).toString('hex');
    } else if (type === S_IFREG) {
      const h = new ContentDigest();
      const fh = await fsp.open(p, 'r');
      try {
        const buf = Buffer.alloc(CHUNK);
        for (;;) {
          // Fill whole chunks so both sides cut the content at the same offsets.
          let filled = 0;
          while (filled < CHUNK) {
            const { bytesRead } = await fh.read(buf, filled, CHUNK - filled, null);
            if (bytesRead === 0) break;
            filled += bytesRead;
          }
          if (filled === 0) break;
          h.update(buf.subarray(0, filled));
          if (filled < CHUNK) break;
        }
      } finally {
        await fh.close();
      }
      s.sha256 = h.digest();
    }
  };
  await walk(rootBuf);
  return snap;
}

/** The same snapshot through the reader, walking from the root by readdir and inode. */
export async function readerSnapshot(fs: Ext4, withBirthTime: boolean): Promise<TreeSnapshot> {
  const snap: TreeSnapshot = new Map();
  const walk = async (ino: number, rel: Buffer): Promise<void> => {
    const st = await fs.inode(ino);
    const xattrs: Record<string, string> = {};
    for (const x of await fs.xattrs(ino)) {
      if (x.name in xattrs) throw new Error(`xattr ${x.name} listed twice`);
      xattrs[x.name] = x.value.toString('hex');
    }
    const s: PathSnapshot = {
      ino: st.ino,
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      nlink: st.nlink,
      size: st.size,
      rdev: st.rdev,
      blocks: st.blocks,
      blksize: fs.blockSize,
      atimeNs: st.atimeNs,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
      crtimeNs: withBirthTime ? st.crtimeNs : undefined,
      xattrs: sortedRecord(xattrs),
    };
    snap.set(rel.toString('hex'), s);
    const type = st.mode & S_IFMT;
    if (type === S_IFDIR) {
      const entries = await fs.readdir(ino);
      s.entries = entries.map((e) => e.name.toString('hex')).sort();
      for (const e of entries) {
        const child = await fs.inode(e.ino);
        if (e.type !== 'unknown' && e.type !== fileTypeOf(child.mode)) {
          throw new Error(`dirent type ${e.type} of ${e.name.toString('hex')} does not match mode 0${child.mode.toString(8)}`);
        }
        if ((await fs.lookup(ino, e.name)) !== e.ino) throw new Error(`lookup of ${e.name.toString('hex')} disagrees with readdir`);
        await walk(e.ino, join(rel, e.name));
      }
    } else if (type === S_IFLNK) {
      s.link = (await fs.readlink(ino)).toString('hex');
    } else if (type === S_IFREG) {
      const h = new ContentDigest();
      for (let off = 0; off < st.size; off += CHUNK) h.update(await fs.read(ino, off, CHUNK));
      s.sha256 = h.digest();
    }
  };
  await walk(fs.rootIno, Buffer.alloc(0));
  return snap;
}

/** Human-readable differences (empty when the snapshots agree). */
export function diffSnapshots(kernel: TreeSnapshot, reader: TreeSnapshot, limit = 20): string[] {
  const diffs: string[] = [];
  const show = (hex: string): string => JSON.stringify(Buffer.from(hex, 'hex').toString('latin1'));
  for (const [p, k] of kernel) {
    const r = reader.get(p);
    if (!r) {
      diffs.push(`${show(p)}: missing in the reader`);
      continue;
    }
    for (const key of Object.keys(k) as (keyof PathSnapshot)[]) {
      if (key === 'crtimeNs' && r.crtimeNs === undefined) continue;
      const a = JSON.stringify(k[key], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      const b = JSON.stringify(r[key], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      if (a !== b) diffs.push(`${show(p)}: ${key}: kernel ${a.slice(0, 300)} reader ${b.slice(0, 300)}`);
    }
    if (diffs.length >= limit) break;
  }
  for (const p of reader.keys()) if (!kernel.has(p) && diffs.length < limit) diffs.push(`${show(p)}: only in the reader`);
  return diffs;
}
