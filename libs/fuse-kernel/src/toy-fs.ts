/**
 * An in-memory tree behind FuseHandlers, for the tests and the round-trip
 * measurement: names and targets as bytes, any 64-bit ino, nanosecond times.
 * It counts the calls that reach it, so a test can tell what the native
 * side answered by itself.
 */
import { Errno } from '@strata/errors';
import type { Attr, DirEntry, Entry, FuseHandlers, Listing, StatFs } from './types';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

export interface ToyNode {
  ino: bigint;
  attr: Attr;
  children?: Map<string, { name: Buffer; ino: bigint }>;
  data?: Buffer;
  target?: Buffer;
  xattrs: Array<[Buffer, Buffer]>;
}

export interface ToyOptions {
  /** Native cache lifetime the handlers put on their answers (seconds); default 0 (none). */
  cacheTtl?: number;
  entryTimeout?: number;
  attrTimeout?: number;
}

const key = (name: Buffer): string => name.toString('latin1');

export class ToyFs {
  readonly nodes = new Map<bigint, ToyNode>();
  readonly calls = new Map<string, number>();
  readonly rootIno: bigint;
  private nextIno: bigint;
  private readonly times = 1_700_000_000_123_456_789n;

  constructor(rootIno = 1n, private readonly options: ToyOptions = {}) {
    this.rootIno = rootIno;
    this.nextIno = rootIno + 1n;
    this.nodes.set(rootIno, { ino: rootIno, attr: this.attrFor(rootIno, S_IFDIR | 0o755, 0), children: new Map(), xattrs: [] });
  }

  attrFor(ino: bigint, mode: number, size: number, extra: Partial<Attr> = {}): Attr {
    return {
      ino,
      mode,
      nlink: (mode & 0o170000) === S_IFDIR ? 2 : 1,
      uid: 0,
      gid: 0,
      size,
      atimeNs: this.times,
      mtimeNs: this.times,
      ctimeNs: this.times,
      ...extra,
    };
  }

  private add(parent: bigint, name: Buffer | string, node: Omit<ToyNode, 'xattrs'> & { xattrs?: ToyNode['xattrs'] }): ToyNode {
    const dir = this.nodes.get(parent);
    if (!dir?.children) throw new Error(`no directory ${parent}`);
    const bytes = Buffer.isBuffer(name) ? name : Buffer.from(name);
    const full: ToyNode = { xattrs: [], ...node };
    dir.children.set(key(bytes), { name: bytes, ino: full.ino });
    this.nodes.set(full.ino, full);
    return full;
  }

  private ino(wanted?: bigint): bigint {
    if (wanted !== undefined) return wanted;
    const ino = this.nextIno;
    this.nextIno += 1n;
    return ino;
  }

  mkdir(parent: bigint, name: Buffer | string, opts: { ino?: bigint } = {}): ToyNode {
    const ino = this.ino(opts.ino);
    return this.add(parent, name, { ino, attr: this.attrFor(ino, S_IFDIR | 0o755, 0), children: new Map() });
  }

  file(parent: bigint, name: Buffer | string, data: Buffer, opts: { ino?: bigint; attr?: Partial<Attr> } = {}): ToyNode {
    const ino = this.ino(opts.ino);
    return this.add(parent, name, { ino, attr: this.attrFor(ino, S_IFREG | 0o644, data.length, opts.attr), data });
  }

  symlink(parent: bigint, name: Buffer | string, target: Buffer): ToyNode {
    const ino = this.ino();
    return this.add(parent, name, { ino, attr: this.attrFor(ino, S_IFLNK | 0o777, target.length), target });
  }

  private count(op: string): void {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
  }

  called(op: string): number {
    return this.calls.get(op) ?? 0;
  }

  entry(ino: bigint): Entry {
    const node = this.nodes.get(ino);
    if (!node) throw new Error(`no node ${ino}`);
    return {
      ino,
      attr: node.attr,
      cacheTtl: this.options.cacheTtl,
      entryTimeout: this.options.entryTimeout,
      attrTimeout: this.options.attrTimeout,
    };
  }

  listing(ino: bigint): Listing {
    const node = this.nodes.get(ino);
    if (!node?.children) throw new Error(`no directory ${ino}`);
    const entries: DirEntry[] = [...node.children.values()].map((c) => ({
      name: c.name,
      ino: c.ino,
      attr: this.nodes.get(c.ino)?.attr,
    }));
    return { entries, cacheTtl: this.options.cacheTtl };
  }

  handlers(): FuseHandlers {
    return {
      lookup: (parent, name) => {
        this.count('lookup');
        const child = this.nodes.get(parent)?.children?.get(key(name));
        return child ? this.entry(child.ino) : -Errno.ENOENT;
      },
      getattr: (ino) => {
        this.count('getattr');
        const node = this.nodes.get(ino);
        return node ? { attr: node.attr, cacheTtl: this.options.cacheTtl } : -Errno.ENOENT;
      },
      readdir: (ino) => {
        this.count('readdir');
        const node = this.nodes.get(ino);
        if (!node) return -Errno.ENOENT;
        if (!node.children) return -Errno.ENOTDIR;
        return this.listing(ino);
      },
      read: (ino, _fh, offset, size) => {
        this.count('read');
        const data = this.nodes.get(ino)?.data;
        if (!data) return -Errno.EISDIR;
        const start = Number(offset);
        return data.subarray(Math.min(start, data.length), Math.min(start + size, data.length));
      },
      readlink: (ino) => {
        this.count('readlink');
        const target = this.nodes.get(ino)?.target;
        return target ?? -Errno.EINVAL;
      },
      getxattr: (ino, name) => {
        this.count('getxattr');
        const hit = this.nodes.get(ino)?.xattrs.find(([n]) => n.equals(name));
        return hit ? hit[1] : -Errno.ENODATA;
      },
      listxattr: (ino) => {
        this.count('listxattr');
        return (this.nodes.get(ino)?.xattrs ?? []).map(([n]) => n);
      },
      statfs: (): StatFs => {
        this.count('statfs');
        return { blocks: 1000n, bfree: 400n, bavail: 300n, files: 5000n, ffree: 4000n, bsize: 4096, namelen: 255 };
      },
    };
  }
}
