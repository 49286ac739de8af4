/**
 * FuseSession: one read-only FUSE mount served by the addon's reader threads.
 * What the native cache holds is answered there; everything else arrives
 * here in batches, is handed to the handlers, and their answers (values,
 * negative errnos, StrataErrors, promises of these) are packed and sent back.
 */
import { realpathSync } from 'node:fs';
import { Errno, StrataError, isStrataError } from '@strata/errors';
import { addon, EV_END, EV_FORGET, EV_RELEASE, EV_REQUEST } from './native';
import type { NativeEvent, NativeRequest, NativeSession } from './native';
import { topMountAt } from './mountinfo';
import { Op, opName } from './ops';
import { encodeAttr, encodeListing, encodeNames, encodeStatfs, encodeXattrs, checkName } from './wire';
import type {
  Attr,
  AttrAnswer,
  Caller,
  EndReason,
  Entry,
  FuseHandlers,
  LinkAnswer,
  Listing,
  MountOptions,
  SessionStats,
  StatFs,
} from './types';

/**
 * Mounted sessions stay reachable from here: the kernel keeps calling into
 * a mount whose JavaScript object nobody else holds.
 */
const live = new Set<FuseSession>();

const DEFAULT_STATFS: StatFs = { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255 };
const READDIRPLUS = { never: 0, auto: 1, always: 2 } as const;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

interface Resolved {
  entryTimeout: number;
  attrTimeout: number;
  negativeTimeout: number;
  negativeCacheTtl: number;
}

export class FuseSession {
  /** The mount point as given. */
  readonly mountpoint: string;
  /**
   * The kernel's device number of this mount (major << 20 | minor): st_dev
   * of every file in it for small minors, and the name of its directory in
   * /sys/fs/fuse/connections.
   */
  readonly connection: number;
  /** Settles once the session has ended, with why. */
  readonly closed: Promise<EndReason>;

  private readonly native: NativeSession;
  private readonly handlers: FuseHandlers;
  private readonly realMountpoint: Buffer;
  private readonly device: { major: number; minor: number } | undefined;
  private readonly onError: ((err: unknown, op: string) => void) | undefined;
  private readonly t: Resolved;
  private resolveClosed!: (reason: EndReason) => void;
  private ended = false;

  private constructor(
    mountpoint: string,
    realMountpoint: Buffer,
    handlers: FuseHandlers,
    options: MountOptions,
    native: (self: FuseSession) => NativeSession,
  ) {
    this.mountpoint = mountpoint;
    this.realMountpoint = realMountpoint;
    this.handlers = handlers;
    this.onError = options.onError;
    this.t = {
      entryTimeout: options.entryTimeout ?? 1,
      attrTimeout: options.attrTimeout ?? 1,
      negativeTimeout: options.negativeTimeout ?? 0,
      negativeCacheTtl: options.negativeCacheTtl ?? 0,
    };
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.native = native(this);
    const top = topMountAt(realMountpoint);
    this.device = top ? { major: top.major, minor: top.minor } : undefined;
    this.connection = top ? top.major * 2 ** 20 + top.minor : 0;
  }

  /**
   * Mounts a read-only FUSE filesystem at mountpoint (root needed). The
   * mountpoint must not lie inside a mount this process serves: mount(2)
   * would then wait on this very thread.
   */
  static async mount(mountpoint: string, handlers: FuseHandlers, options: MountOptions = {}): Promise<FuseSession> {
    let real: Buffer;
    try {
      real = realpathSync(mountpoint, { encoding: 'buffer' });
    } catch (err) {
      throw StrataError.from(err, `mount ${mountpoint}`);
    }
    const { NativeSession: Native } = addon();
    const rootIno = options.rootIno ?? 1n;
    // Checked before mounting: a bad answer must not leave a mount behind.
    const rootAttr = options.rootAttr ? encodeAttr(options.rootAttr, rootIno) : undefined;
    let session: FuseSession;
    try {
      session = new FuseSession(mountpoint, real, handlers, options, (self) => {
        return new Native(
          {
            mountpoint,
            fsName: options.fsName ?? 'strata',
            subtype: options.subtype ?? 'strata',
            threads: options.threads ?? 4,
            rootIno,
            exec: options.exec ?? false,
            suid: options.suid ?? false,
            dev: options.dev ?? false,
            allowOther: options.allowOther ?? true,
            defaultPermissions: options.defaultPermissions ?? true,
            keepCache: options.keepCache ?? false,
            readdirplus: READDIRPLUS[options.readdirplus ?? 'always'],
            cloneFd: options.cloneFd ?? true,
            cacheLimit: options.cacheLimit ?? 1 << 20,
            negativeTimeout: options.negativeTimeout ?? 0,
            notifyForget: handlers.forget !== undefined,
            notifyRelease: handlers.release !== undefined,
            maxPages: options.maxPages ?? 256,
            passthrough: options.passthrough ?? true,
          },
          (events) => self.onEvents(events),
        );
      });
    } catch (err) {
      const errno = typeof (err as { errno?: unknown }).errno === 'number' ? (err as { errno: number }).errno : Errno.EIO;
      throw new StrataError(errno, `fuse mount ${mountpoint}: ${(err as Error).message}`, { cause: err });
    }
    live.add(session);
    if (rootAttr) session.native.cacheAttr(rootIno, rootAttr, session.t.attrTimeout, Infinity);
    return session;
  }

  // ---- the native cache ----

  /** Answers LOOKUP(parent, name) natively with entry (and GETATTR of entry.ino with its attributes). */
  cacheEntry(parent: bigint, name: Buffer, entry: Entry): void {
    checkName(name);
    this.native.cacheEntry(
      parent,
      name,
      entry.ino,
      encodeAttr(entry.attr, entry.ino),
      entry.entryTimeout ?? this.t.entryTimeout,
      entry.attrTimeout ?? this.t.attrTimeout,
      entry.cacheTtl ?? Infinity,
    );
  }

  /** Answers LOOKUP(parent, name) natively with ENOENT. */
  cacheNegative(parent: bigint, name: Buffer, options: { entryTimeout?: number; cacheTtl?: number } = {}): void {
    checkName(name);
    this.native.cacheNegative(parent, name, options.entryTimeout ?? this.t.negativeTimeout, options.cacheTtl ?? Infinity);
  }

  cacheAttr(ino: bigint, attr: Attr, options: { attrTimeout?: number; cacheTtl?: number } = {}): void {
    this.native.cacheAttr(ino, encodeAttr(attr, ino), options.attrTimeout ?? this.t.attrTimeout, options.cacheTtl ?? Infinity);
  }

  /**
   * A whole listing: READDIR/READDIRPLUS of ino, and LOOKUP of its names
   * (a name it lacks is ENOENT), are answered natively.
   */
  cacheListing(ino: bigint, listing: Listing): void {
    this.native.cacheListing(
      ino,
      encodeListing(listing.entries, listing.dotIno, listing.dotdotIno),
      listing.entryTimeout ?? this.t.entryTimeout,
      listing.attrTimeout ?? this.t.attrTimeout,
      listing.cacheTtl ?? Infinity,
    );
  }

  cacheLink(ino: bigint, target: Buffer, cacheTtl = Infinity): void {
    if (target.length === 0 || target.length > 4095) throw StrataError.invalid('a link target must be 1..4095 bytes');
    this.native.cacheLink(ino, target, cacheTtl);
  }

  /** The node's whole xattr set: GETXATTR (ENODATA for other names) and LISTXATTR answered natively. */
  cacheXattrs(ino: bigint, xattrs: ReadonlyArray<readonly [Buffer, Buffer]>, cacheTtl = Infinity): void {
    this.native.cacheXattrs(ino, encodeXattrs(xattrs), cacheTtl);
  }

  cacheStatfs(st: StatFs): void {
    this.native.cacheStatfs(encodeStatfs(st), st.cacheTtl ?? Infinity);
  }

  /** Whether the kernel agreed to FUSE passthrough at mount (kernel ≥ 6.9, CAP_SYS_ADMIN). */
  get passthroughAvailable(): boolean {
    return this.stats().passthrough;
  }

  /**
   * Makes the kernel serve ino's data from the file open at fd: every later
   * open of ino reads (and mmaps) it without a READ reaching this process.
   * The file must hold exactly ino's content; the kernel keeps its own
   * reference, so fd may be closed afterwards. Replaces an earlier backing.
   */
  setPassthrough(ino: bigint, fd: number): void {
    const r = this.native.setBacking(ino, fd);
    if (r < 0) throw new StrataError(-r, `passthrough of ino ${ino}`);
  }

  /** New opens of ino go through read() again; files already open keep their backing. */
  clearPassthrough(ino: bigint): void {
    const r = this.native.clearBacking(ino);
    if (r < 0 && r !== -Errno.ENOENT) throw new StrataError(-r, `passthrough of ino ${ino}`);
  }

  /** Drops what the native cache holds about ino (the kernel's own caches are not touched). */
  uncache(ino: bigint): void {
    this.native.uncache(ino);
  }

  stats(): SessionStats {
    return this.native.stats() as unknown as SessionStats;
  }

  // ---- ending ----

  /**
   * Detaches the mount (lazily: open files do not block it), stops every
   * reader thread and closes the connection. Whatever still uses the mount
   * through an open file or cwd gets ENOTCONN. Also removes a mount left
   * stale by a kernel abort. Idempotent.
   */
  async unmount(): Promise<void> {
    try {
      this.detachIfOurs();
    } finally {
      this.finish('unmount');
    }
    await this.closed;
  }

  /**
   * Detaches the mount but keeps serving what is still open; the session
   * ends by itself (closed settles with 'kernel') once the kernel drops its
   * last reference.
   */
  detach(): void {
    this.detachIfOurs();
  }

  private detachIfOurs(): void {
    if (!this.device) return;
    const top = topMountAt(this.realMountpoint);
    if (!top || top.major !== this.device.major || top.minor !== this.device.minor) return;
    const errno = addon().umount(this.mountpoint);
    if (errno !== 0 && errno !== Errno.EINVAL && errno !== Errno.ENOENT) {
      throw new StrataError(errno, `umount ${this.mountpoint}`);
    }
  }

  private finish(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    this.native.close();
    live.delete(this);
    this.resolveClosed(reason);
  }

  // ---- requests ----

  private onEvents(events: NativeEvent[]): void {
    for (const ev of events) {
      try {
        switch (ev.kind) {
          case EV_REQUEST:
            this.request(ev);
            break;
          case EV_FORGET:
            this.handlers.forget?.(ev.inos);
            break;
          case EV_RELEASE:
            this.handlers.release?.(ev.ino, ev.fh);
            break;
          case EV_END:
            this.finish(ev.reason === 'destroy' || ev.reason === 'error' ? ev.reason : 'kernel');
            break;
        }
      } catch (err) {
        this.report(err, 'event');
      }
    }
  }

  private request(req: NativeRequest): void {
    let result: unknown;
    try {
      result = this.invoke(req, { uid: req.uid, gid: req.gid, pid: req.pid });
    } catch (err) {
      this.fail(req, err);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (value) => this.answer(req, value),
        (err: unknown) => this.fail(req, err),
      );
    } else {
      this.answer(req, result);
    }
  }

  private invoke(req: NativeRequest, caller: Caller): unknown {
    const h = this.handlers;
    switch (req.op) {
      case Op.LOOKUP:
        return h.lookup(req.ino, req.name ?? Buffer.alloc(0), caller);
      case Op.GETATTR:
        return h.getattr(req.ino, caller);
      case Op.READDIR:
      case Op.READDIRPLUS:
        return h.readdir(req.ino, caller);
      case Op.READ:
        return h.read(req.ino, req.fh, req.offset, req.size, caller);
      case Op.READLINK:
        return h.readlink ? h.readlink(req.ino, caller) : -Errno.ENOSYS;
      case Op.GETXATTR:
        return h.getxattr ? h.getxattr(req.ino, req.name ?? Buffer.alloc(0), caller) : -Errno.ENOSYS;
      case Op.LISTXATTR:
        return h.listxattr ? h.listxattr(req.ino, caller) : -Errno.ENOSYS;
      case Op.STATFS:
        return h.statfs ? h.statfs(req.ino, caller) : DEFAULT_STATFS;
      default:
        return -Errno.ENOSYS;
    }
  }

  private answer(req: NativeRequest, value: unknown): void {
    if (typeof value === 'number') {
      this.replyErrno(req, Number.isInteger(value) && value < 0 ? -value : Errno.EIO);
      return;
    }
    const n = this.native;
    const t = this.t;
    try {
      switch (req.op) {
        case Op.LOOKUP: {
          const e = value as Entry;
          n.replyEntry(
            req.id,
            e.ino,
            encodeAttr(e.attr, e.ino),
            e.entryTimeout ?? t.entryTimeout,
            e.attrTimeout ?? t.attrTimeout,
            e.cacheTtl ?? 0,
          );
          return;
        }
        case Op.GETATTR: {
          const a = value as AttrAnswer;
          n.replyAttr(req.id, encodeAttr(a.attr, req.ino), a.attrTimeout ?? t.attrTimeout, a.cacheTtl ?? 0);
          return;
        }
        case Op.READDIR:
        case Op.READDIRPLUS: {
          const l = value as Listing;
          n.replyListing(
            req.id,
            encodeListing(l.entries, l.dotIno, l.dotdotIno),
            l.entryTimeout ?? t.entryTimeout,
            l.attrTimeout ?? t.attrTimeout,
            l.cacheTtl ?? 0,
          );
          return;
        }
        case Op.READ:
          n.replyData(req.id, asBuffer(value, 'read'));
          return;
        case Op.READLINK: {
          const link = Buffer.isBuffer(value) ? { target: value } : (value as LinkAnswer);
          const target = asBuffer(link.target, 'readlink');
          if (target.length === 0) throw StrataError.corrupt('empty link target');
          n.replyLink(req.id, target, link.cacheTtl ?? 0);
          return;
        }
        case Op.GETXATTR:
          n.replyXattr(req.id, asBuffer(value, 'getxattr'));
          return;
        case Op.LISTXATTR:
          if (!Array.isArray(value)) throw StrataError.invalid('listxattr must answer an array of Buffers');
          n.replyXattr(req.id, encodeNames(value.map((v) => asBuffer(v, 'listxattr'))));
          return;
        case Op.STATFS: {
          const st = value as StatFs;
          n.replyStatfs(req.id, encodeStatfs(st), st.cacheTtl ?? 0);
          return;
        }
        default:
          n.replyError(req.id, Errno.ENOSYS);
      }
    } catch (err) {
      // A malformed answer (wrong shape, a name with '/', a bad mode) is the handler's bug: EIO, reported.
      this.report(err, opName(req.op));
      n.replyError(req.id, Errno.EIO);
    }
  }

  private fail(req: NativeRequest, err: unknown): void {
    if (!isStrataError(err)) this.report(err, opName(req.op));
    this.replyErrno(req, StrataError.from(err).errno);
  }

  private replyErrno(req: NativeRequest, errno: number): void {
    if (req.op === Op.LOOKUP && errno === Errno.ENOENT) {
      this.native.replyNegative(req.id, this.t.negativeTimeout, this.t.negativeCacheTtl);
    } else {
      this.native.replyError(req.id, errno);
    }
  }

  private report(err: unknown, op: string): void {
    try {
      this.onError?.(err, op);
    } catch {
      // a failing logger must not take the session down
    }
  }
}

function asBuffer(value: unknown, op: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw StrataError.invalid(`${op} must answer a Buffer`);
}
