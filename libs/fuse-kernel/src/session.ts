/**
 * FuseSession: one read-only FUSE mount served by the addon's reader threads.
 * What the native cache holds is answered there; everything else arrives
 * here in batches, is handed to the handlers, and their answers (values,
 * negative errnos, StrataErrors, promises of these) are packed and sent back.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Errno, StrataError, isStrataError } from '@strata/errors';
import { addon, EV_END, EV_FORGET, EV_NOTIFIED, EV_OPEN, EV_RELEASE, EV_REQUEST, SERVE_AUTO, SERVE_PASSTHROUGH, SERVE_PREAD } from './native';
import type { NativeEvent, NativeHandedFiles, NativeMountOptions, NativeRequest, NativeSession } from './native';
import { handoverOptions, optionsFromHandover, parseHandover } from './handover';
import { mountKey, mountsOf, mountsOfDevice, topMountAt } from './mountinfo';
import { checkReadaheadKb, readaheadOf, setReadahead } from './readahead';
import { opName, opRow } from './ops';
import type { Defaults } from './ops';
import { encodeAttr, encodeListing, encodeStatfs, encodeXattrs, checkName } from './wire';
import type {
  AdoptOptions,
  Attr,
  Caller,
  DataServing,
  EndReason,
  Entry,
  FileRun,
  FuseHandlers,
  Listing,
  MountOptions,
  SessionHandover,
  HandoverOptions,
  HandedFiles,
  SessionStats,
  StatFs,
} from './types';

/**
 * Mounted sessions stay reachable from here: the kernel keeps calling into
 * a mount whose JavaScript object nobody else holds.
 */
const live = new Set<FuseSession>();

const READDIRPLUS = { never: 0, auto: 1, always: 2 } as const;
// Not in @strata/errors: only the connection's end hands these out.
const ENODEV = 19;
const ENOTCONN = 107;
/** setFileRuns() bounds (native/session.h kMaxFileRuns, kMaxRunFiles). */
export const MAX_FILE_RUNS = 65536;
export const MAX_RUN_FILES = 64;

const DATA_SERVING: Record<DataServing, number> = { auto: SERVE_AUTO, passthrough: SERVE_PASSTHROUGH, pread: SERVE_PREAD };

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
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
  /** The mount's readahead (KiB) as set after INIT; undefined where sysfs does not say. */
  private readonly readahead: number | undefined;
  private readonly onError: ((err: unknown, op: string) => void) | undefined;
  private readonly t: Defaults;
  private resolveClosed!: (reason: EndReason) => void;
  private ended = false;
  private readonly dataServing: number;
  /** Invalidation notices the notifier thread has not written yet, by token. */
  private readonly notices = new Map<number, (dropped: boolean) => void>();

  /** What handoverState() carries of the options this session was made with. */
  private readonly handover: HandoverOptions;
  private releasing = false;
  /** What release() left open in the kernel for a successor (handoverState().files). */
  private handed: HandedFiles | undefined;

  private constructor(
    mountpoint: string,
    realMountpoint: Buffer,
    handlers: FuseHandlers,
    options: MountOptions,
    native: (self: FuseSession) => NativeSession,
    adopted?: { device: { major: number; minor: number } | null },
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
    this.dataServing = DATA_SERVING[options.dataServing ?? 'auto'];
    if (this.dataServing === undefined) throw StrataError.invalid(`dataServing must be auto, passthrough or pread`);
    this.handover = handoverOptions(options);
    if (adopted) {
      // Known from the handover: looking at the mount now could touch it from this thread.
      this.native = native(this);
      this.device = adopted.device ?? undefined;
      this.connection = adopted.device ? adopted.device.major * 2 ** 20 + adopted.device.minor : 0;
      // The bdi lives with the superblock: the mounting session's setting holds.
      this.readahead = this.device ? readaheadOf(this.device) : undefined;
      return;
    }
    const fsType = `fuse.${options.subtype ?? 'strata'}`;
    const before = new Set(mountsOf(fsType).map(mountKey));
    this.native = native(this);
    // Found by path; if the directory was renamed while mount(2) ran (a user's own mountpoint may be), as the one
    // mount of this type made meanwhile (none other: then it is not known, and unmount() detaches nothing).
    const atPath = topMountAt(realMountpoint);
    const made = mountsOf(fsType).filter((m) => !before.has(mountKey(m)));
    const top = atPath?.fsType === fsType ? atPath : made.length === 1 ? made[0] : undefined;
    this.device = top ? { major: top.major, minor: top.minor } : undefined;
    this.connection = top ? top.major * 2 ** 20 + top.minor : 0;
    // After INIT (done when the addon's constructor returns): INIT itself can only lower the readahead.
    // (readaheadKb was checked by nativeOptions, before mounting.)
    this.readahead = this.device ? setReadahead(this.device, options.readaheadKb ?? (options.maxPages ?? 256) * 4) : undefined;
  }

  /**
   * Mounts a read-only FUSE filesystem at mountpoint (root needed). The
   * mountpoint must not lie inside a mount this process serves: mount(2)
   * would then wait on this very thread.
   */
  static async mount(mountpoint: string, handlers: FuseHandlers, options: MountOptions = {}): Promise<FuseSession> {
    // /proc/self/fd/N names the directory of the descriptor itself: mount(2) follows that link to it, never a new lookup of the path.
    const target = options.mountpointFd === undefined ? mountpoint : `/proc/self/fd/${options.mountpointFd}`;
    let real: Buffer;
    try {
      real = realpathSync(target, { encoding: 'buffer' });
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
        return new Native(nativeOptions(target, handlers, options), (events) => self.onEvents(events));
      });
    } catch (err) {
      const errno = typeof (err as { errno?: unknown }).errno === 'number' ? (err as { errno: number }).errno : Errno.EIO;
      throw new StrataError(errno, `fuse mount ${mountpoint}: ${(err as Error).message}`, { cause: err });
    }
    live.add(session);
    if (rootAttr) session.native.cacheAttr(rootIno, rootAttr, session.t.attrTimeout, Infinity);
    return session;
  }

  /**
   * Serves a connection another session (of this process or one that died)
   * mounted, from fds it read from (FuseSession.handoverFds(), kept by a
   * holder): no mount(2), no INIT (what INIT agreed on comes from state).
   * The first fd is dup'd (any device of the connection would do; the
   * master by convention) and the session clones its readers' devices from
   * it; the caller keeps and closes its own fds: the others' unanswered
   * requests have been moved back to the kernel's queue by the time adopt()
   * returns, so closing them loses nothing. Once the readers run, the kernel is told to resend what the old
   * session had read and not answered (FUSE_NOTIFY_RESEND, protocol 7.40;
   * stats().resendErrno says how that went), so those callers are answered
   * here. adoptedInos count as live (liveInos()) until the kernel first
   * forgets each; any nodeid the kernel names is taken for the ino it
   * stands for (handlers see inos they may not know: ESTALE is theirs to
   * answer). Throws EINVAL for a state of another format or version, bad
   * fds, or a rootIno other than the state's (nodeids depend on it).
   */
  static adopt(fds: readonly number[], state: SessionHandover, handlers: FuseHandlers, options: AdoptOptions = {}): FuseSession {
    const handover = parseHandover(state);
    if (!Array.isArray(fds) || fds.length === 0 || !fds.every((fd) => Number.isInteger(fd) && fd >= 0 && fd < 2 ** 31)) {
      throw StrataError.invalid('adopt: fds must be the handed-over /dev/fuse descriptors, master first');
    }
    const rootIno = BigInt(handover.options.rootIno);
    if (options.rootIno !== undefined && options.rootIno !== rootIno) {
      throw StrataError.invalid(`adopt: rootIno ${options.rootIno} differs from the mount's ${rootIno} (nodeids depend on it)`);
    }
    // The connection's mode, not the successor's wish: the kernel keeps no_open for the connection's life.
    const merged: MountOptions = { ...optionsFromHandover(handover.options), ...withoutUndefined(options), rootIno, kernelOpens: handover.negotiated.kernelOpens === true };
    const adopted = adoptedKeys(options.adoptedInos);
    const rootAttr = merged.rootAttr ? encodeAttr(merged.rootAttr, rootIno) : undefined;
    // The parent's real path and the name: the mountpoint itself is in the mount, which nobody serves yet.
    let real: Buffer;
    try {
      const parent = realpathSync(dirname(handover.mountpoint), { encoding: 'buffer' });
      real = Buffer.from(join(parent.toString('utf8'), basename(handover.mountpoint)));
    } catch (err) {
      throw StrataError.from(err, `adopt ${handover.mountpoint}`);
    }
    const { NativeSession: Native } = addon();
    let session: FuseSession;
    try {
      session = new FuseSession(
        handover.mountpoint,
        real,
        handlers,
        merged,
        (self) =>
          new Native(
            { ...nativeOptions(handover.mountpoint, handlers, merged), generation: handover.negotiated.generation + 1 },
            (events) => self.onEvents(events),
            {
              fd: fds[0] as number,
              minor: handover.negotiated.minor,
              flags: BigInt(handover.negotiated.flags),
              maxPages: handover.negotiated.maxPages,
              passthrough: handover.negotiated.passthrough,
              kernelOpens: handover.negotiated.kernelOpens === true,
              adopted,
              ...(handover.files ? { files: nativeFiles(handover.files) } : {}),
            },
          ),
        { device: handover.device },
      );
    } catch (err) {
      const errno = typeof (err as { errno?: unknown }).errno === 'number' ? (err as { errno: number }).errno : Errno.EIO;
      throw new StrataError(errno, `fuse adopt ${handover.mountpoint}: ${(err as Error).message}`, { cause: err });
    }
    live.add(session);
    if (rootAttr) session.native.cacheAttr(rootIno, rootAttr, session.t.attrTimeout, Infinity);
    return session;
  }

  // ---- takeover (issue 27) ----

  /**
   * Every fd the session reads from, the master first: the session's own
   * (not dup'd, still closed by it). A holder keeps dups of all of them (a
   * cloned fd is a device of its own, whose unanswered requests end when its
   * last copy closes), e.g. sent with SCM_RIGHTS. Empty once ended.
   */
  handoverFds(): number[] {
    return this.ended ? [] : this.native.fds();
  }

  /**
   * What a successor needs besides the fds (JSON-safe; persist it with
   * them). Taken after release() it also says how files are open and which
   * passthrough backing ids the successor now owns (files): write it again
   * then, or a successor of a passthrough mount answers OPENs of files open
   * through passthrough in a way the kernel refuses (EIO) until they close.
   */
  handoverState(): SessionHandover {
    const n = this.native.negotiated();
    return {
      format: 'strata-fuse-handover',
      version: 1,
      mountpoint: this.mountpoint,
      connection: this.connection,
      device: this.device ? { ...this.device } : null,
      negotiated: {
        minor: n.minor,
        flags: n.flags.toString(),
        maxWrite: n.maxWrite,
        maxPages: n.maxPages,
        passthrough: n.passthrough,
        ...(n.kernelOpens ? { kernelOpens: true } : {}),
        generation: n.generation,
      },
      options: { ...this.handover },
      ...(this.handed ? { files: { opens: this.handed.opens.map((o) => ({ ...o })), backings: this.handed.backings.map((b) => ({ ...b })) } } : {}),
    };
  }

  /**
   * Stops serving without unmounting or aborting: the reader threads stop,
   * what waits for a handler is left unanswered (the kernel keeps it for a
   * successor's resend; the handler's late answer is dropped), and the
   * session closes its fds, so the connection lives on in whatever copies a
   * holder keeps (none: the kernel then ends it). closed settles
   * 'released'; unmount() and detach() do nothing afterwards, and nothing at
   * process exit touches the mount.
   */
  async release(): Promise<void> {
    if (!this.ended && !this.releasing) {
      this.releasing = true;
      live.delete(this);
      const r = this.native.release();
      if (r >= 0) this.handed = filesFromNative(this.native.handed());
      // 1: a notice is still inside the kernel; an EV_END 'released' comes once it is out.
      if (r !== 1) this.finish('released');
    }
    await this.closed;
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

  /** Whether the kernel opens this connection's files itself (kernelOpens, where the kernel offered it). */
  get kernelOpens(): boolean {
    return this.stats().kernelOpens;
  }

  /** Whether the kernel agreed to FUSE passthrough at mount (kernel ≥ 6.9, CAP_SYS_ADMIN). */
  /**
   * The kernel's readahead for this mount in KiB (MountOptions.readaheadKb),
   * or undefined where it could not be read (no sysfs).
   */
  get readaheadKb(): number | undefined {
    return this.readahead;
  }

  get passthroughAvailable(): boolean {
    return this.stats().passthrough;
  }

  /**
   * Serves ino's data from the file open at fd, which must hold exactly
   * ino's content, without JavaScript: by FUSE passthrough where it was
   * negotiated and dataServing allows (later opens of ino are read and
   * mmapped by the kernel itself), else by pread(2) of a dup of fd on the
   * reader threads (every READ of ino, files already open included). fd
   * may be closed afterwards either way. Replaces an earlier registration;
   * lasts until clearFileData(), uncache(), the native cache evicting the
   * node (it is unreferenced by the kernel and beyond cacheLimit) or the
   * end of the session, after which READs come to handlers.read again.
   * Throws EOPNOTSUPP for dataServing 'passthrough' without passthrough,
   * EBADF for a bad fd.
   */
  setFileData(ino: bigint, fd: number): 'passthrough' | 'pread' {
    return this.registerFileData(ino, fd, this.dataServing);
  }

  /**
   * Serves ino's data, size bytes made of runs over the open files fds (a
   * store's image files) and holes, by pread(2) on the reader threads
   * without JavaScript (never passthrough). Each fd is dup'ed for this
   * registration (fds may be closed afterwards), and the preadFiles bound
   * counts every one of them. runs must be sorted, contiguous from 0 to
   * size, each longer than 0, at most MAX_FILE_RUNS of them over at most
   * MAX_RUN_FILES files: else EINVAL. A READ past a store file's end or a
   * failing pread is that READ's EIO. Replaces an earlier registration, and
   * lasts as setFileData()'s does.
   */
  setFileRuns(ino: bigint, fds: readonly number[], runs: readonly FileRun[], size: number): void {
    if (fds.length > MAX_RUN_FILES || runs.length > MAX_FILE_RUNS) {
      throw new StrataError(Errno.EINVAL, `file runs of ino ${ino}: ${runs.length} runs over ${fds.length} files`);
    }
    const packed = new Float64Array(runs.length * 4);
    runs.forEach((r, i) => {
      packed[i * 4] = r.offset;
      packed[i * 4 + 1] = r.length;
      packed[i * 4 + 2] = r.file ?? -1;
      packed[i * 4 + 3] = r.fileOffset ?? 0;
    });
    const r = this.native.setFileRuns(ino, Int32Array.from(fds), packed, size);
    if (r < 0) throw new StrataError(-r, `file runs of ino ${ino}`);
  }

  /**
   * Ends ino's registration: READs go to handlers.read again (files open
   * through passthrough keep reading their backing file). The dup is closed
   * once no reader thread is still in its pread. No-op when none.
   */
  clearFileData(ino: bigint): void {
    const r = this.native.clearFileData(ino);
    if (r < 0 && r !== -Errno.ENOENT && r !== -ENOTCONN) throw new StrataError(-r, `file data of ino ${ino}`);
  }

  /**
   * setFileData() that insists on passthrough whatever dataServing says
   * (EOPNOTSUPP where not negotiated).
   */
  setPassthrough(ino: bigint, fd: number): void {
    this.registerFileData(ino, fd, SERVE_PASSTHROUGH);
  }

  /** clearFileData(). */
  clearPassthrough(ino: bigint): void {
    this.clearFileData(ino);
  }

  private registerFileData(ino: bigint, fd: number, mode: number): 'passthrough' | 'pread' {
    const r = this.native.setFileData(ino, fd, mode);
    if (r === -Errno.EOPNOTSUPP && this.kernelOpens) {
      throw new StrataError(-r, `file data of ino ${ino}: no passthrough where the kernel opens files itself (kernelOpens): pread serves it`);
    }
    if (r < 0) throw new StrataError(-r, `file data of ino ${ino}`);
    return r === SERVE_PASSTHROUGH ? 'passthrough' : 'pread';
  }

  // ---- kernel invalidation (LIVE layers) ----

  /**
   * ino changed: drops the native cache's attributes, listing, link and
   * xattrs of ino at once, and has the kernel drop its attributes and the
   * page cache from offset for length bytes (-1n: to the end; an offset
   * below 0 keeps the page cache). Registered file data stays (register the
   * new content with setFileData). Returns at once: the notice is written
   * by a native thread, since the kernel may wait for a request this thread
   * has yet to answer. The promise (which never rejects) settles when the
   * kernel has taken it: true if it held the node, false if it did not (or
   * the session ended).
   */
  invalidateInode(ino: bigint, offset = 0n, length = -1n): Promise<boolean> {
    return this.notice(this.native.invalidateInode(ino, offset, length));
  }

  /**
   * parent/name changed (removed, replaced, added): drops the native
   * cache's entry (positive or negative) and parent's listing at once, and
   * has the kernel drop its dentry (and parent's attributes). As with
   * invalidateInode: returns at once; true if the kernel held the name.
   */
  invalidateEntry(parent: bigint, name: Buffer): Promise<boolean> {
    checkName(name);
    return this.notice(this.native.invalidateEntry(parent, name));
  }

  private notice(token: number): Promise<boolean> {
    if (token <= 0) return Promise.resolve(false); // nothing held by the kernel, or the session has ended
    return new Promise((resolve) => this.notices.set(token, resolve));
  }

  private noticed(token: number, errno: number): void {
    const settle = this.notices.get(token);
    if (!settle) return;
    this.notices.delete(token);
    // ENOENT: the kernel no longer held it; ENOTCONN/ENODEV: the connection went.
    if (errno !== 0 && errno !== Errno.ENOENT && errno !== ENOTCONN && errno !== ENODEV) {
      this.report(new StrataError(errno, `invalidation notice ${token}`), 'notify');
    }
    settle(errno === 0);
  }

  /**
   * Drops what the native cache holds about ino, its file data included
   * (the kernel's own caches are not touched: see invalidateInode).
   */
  uncache(ino: bigint): void {
    this.native.uncache(ino);
  }

  /**
   * Every ino the kernel or the native side may still name in a request
   * (held by the kernel, in a cached entry or listing, in an open
   * directory's listing, in a request waiting here); duplicates possible.
   * An ino not among them, and not handed out since, can be forgotten by
   * whoever maps inos to something bigger (the agent's node table).
   */
  liveInos(): BigUint64Array {
    return this.native.liveKeys();
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
    if (this.releasing) {
      await this.closed; // the mount is the successor's now
      return;
    }
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
    if (!this.releasing) this.detachIfOurs();
  }

  /** Detaches this session's mount wherever it is now (renamed parents move it), and nothing mounted over it since. */
  private detachIfOurs(): void {
    if (!this.device) return;
    for (const m of mountsOfDevice(this.device.major, this.device.minor)) {
      const top = topMountAt(m.mountPoint);
      if (!top || top.mountId !== m.mountId) continue;
      const at = m.mountPoint.equals(this.realMountpoint) ? this.mountpoint : m.mountPoint.toString('utf8');
      const errno = addon().umount(at);
      if (errno !== 0 && errno !== Errno.EINVAL && errno !== Errno.ENOENT) {
        throw new StrataError(errno, `umount ${at}`);
      }
    }
  }

  private finish(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    this.native.close();
    live.delete(this);
    for (const settle of this.notices.values()) settle(false);
    this.notices.clear();
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
          case EV_OPEN:
            this.handlers.opened?.(ev.ino, ev.fh, { uid: ev.uid, gid: ev.gid, pid: ev.pid });
            break;
          case EV_NOTIFIED:
            this.noticed(ev.token, ev.errno);
            break;
          case EV_END:
            this.finish(ev.reason === 'destroy' || ev.reason === 'error' || ev.reason === 'released' ? ev.reason : 'kernel');
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
    const row = opRow(req.op);
    return row ? row.invoke(this.handlers, req, caller) : -Errno.ENOSYS;
  }

  private answer(req: NativeRequest, value: unknown): void {
    if (typeof value === 'number') {
      this.replyErrno(req, Number.isInteger(value) && value < 0 ? -value : Errno.EIO);
      return;
    }
    const row = opRow(req.op);
    try {
      if (row) row.reply(this.native, req, value, this.t);
      else this.native.replyError(req.id, Errno.ENOSYS);
    } catch (err) {
      // A malformed answer (wrong shape, a name with '/', a bad mode) is the handler's bug: EIO, reported.
      this.report(err, opName(req.op));
      this.native.replyError(req.id, Errno.EIO);
    }
  }

  private fail(req: NativeRequest, err: unknown): void {
    if (!isStrataError(err)) this.report(err, opName(req.op));
    this.replyErrno(req, StrataError.from(err).errno);
  }

  private replyErrno(req: NativeRequest, errno: number): void {
    const enoent = errno === Errno.ENOENT ? opRow(req.op)?.enoent : undefined;
    if (enoent) {
      enoent(this.native, req, this.t);
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

/** What the addon is constructed with, from a session's options. */
function nativeOptions(mountpoint: string, handlers: FuseHandlers, options: MountOptions): NativeMountOptions {
  const timeout = options.requestTimeoutMs ?? 0;
  if (!(Number.isFinite(timeout) && timeout >= 0)) throw StrataError.invalid('requestTimeoutMs must be a finite number >= 0');
  if (options.preadFiles !== undefined && !(Number.isInteger(options.preadFiles) && options.preadFiles >= 1)) throw StrataError.invalid('preadFiles must be an integer >= 1');
  if (options.readaheadKb !== undefined) checkReadaheadKb(options.readaheadKb);
  if (options.kernelOpens === true) {
    if (options.keepCache !== true) throw StrataError.invalid('kernelOpens needs keepCache: the kernel then keeps each file\'s pages across opens');
    if (handlers.opened !== undefined) throw StrataError.invalid('kernelOpens: the kernel opens files itself, so no OPEN reaches an opened (audit) handler');
  }
  return {
    mountpoint,
    fsName: options.fsName ?? 'strata',
    subtype: options.subtype ?? 'strata',
    threads: options.threads ?? 4,
    rootIno: options.rootIno ?? 1n,
    exec: options.exec ?? false,
    suid: options.suid ?? false,
    dev: options.dev ?? false,
    allowOther: options.allowOther ?? true,
    ownerUid: options.owner?.uid ?? -1,
    ownerGid: options.owner?.gid ?? -1,
    defaultPermissions: options.defaultPermissions ?? true,
    keepCache: options.keepCache ?? false,
    readdirplus: READDIRPLUS[options.readdirplus ?? 'always'],
    cloneFd: options.cloneFd ?? true,
    cacheLimit: options.cacheLimit ?? 1 << 20,
    negativeTimeout: options.negativeTimeout ?? 0,
    notifyForget: handlers.forget !== undefined,
    notifyRelease: handlers.release !== undefined,
    notifyOpen: handlers.opened !== undefined,
    openHook: handlers.open !== undefined,
    maxPages: options.maxPages ?? 256,
    passthrough: options.passthrough ?? true,
    kernelOpens: options.kernelOpens === true,
    ...(options.preadFiles !== undefined ? { preadFiles: options.preadFiles } : {}),
    dataServing: DATA_SERVING[options.dataServing ?? 'auto'],
    requestTimeoutMs: timeout,
    ...(options.openModesFile !== undefined ? { openModesFile: options.openModesFile } : {}),
    ...(options.openModesCapacity !== undefined ? { openModesCapacity: options.openModesCapacity } : {}),
  };
}

/** HandedFiles from the addon's typed arrays. */
function filesFromNative(n: NativeHandedFiles): HandedFiles {
  const opens: HandedFiles['opens'] = [];
  n.opens.forEach((ino, i) => {
    opens.push({ ino: ino.toString(), cached: n.openModes[i * 3] ?? 0, passthrough: n.openModes[i * 3 + 1] ?? 0, backingId: n.openModes[i * 3 + 2] ?? -1 });
  });
  const backings: HandedFiles['backings'] = [];
  n.backings.forEach((ino, i) => backings.push({ ino: ino.toString(), backingId: n.backingIds[i] ?? -1 }));
  return { opens, backings };
}

/** HandedFiles (checked by parseHandover) as the addon takes them. */
function nativeFiles(f: HandedFiles): NativeHandedFiles {
  return {
    opens: BigUint64Array.from(f.opens, (o) => BigInt(o.ino)),
    openModes: Int32Array.from(f.opens.flatMap((o) => [o.cached, o.passthrough, o.backingId])),
    backings: BigUint64Array.from(f.backings, (b) => BigInt(b.ino)),
    backingIds: Int32Array.from(f.backings, (b) => b.backingId),
  };
}

/** adoptedInos as the addon takes them; EINVAL for anything but 64-bit unsigned bigints. */
function adoptedKeys(inos: Iterable<bigint> | undefined): BigUint64Array {
  const out: bigint[] = [];
  for (const ino of inos ?? []) {
    if (typeof ino !== 'bigint' || ino < 0n || ino >= 2n ** 64n) throw StrataError.invalid('adoptedInos must be 64-bit unsigned bigints');
    out.push(ino);
  }
  return BigUint64Array.from(out);
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
