/**
 * The public shapes of a FUSE session: what handlers answer and what the
 * native cache is filled with. Inodes are bigints throughout: a node's `ino`
 * is the identity JavaScript chose for it (normally its st_ino) and comes back
 * in every later request about that node; the kernel's nodeid is the
 * session's own business.
 */

/** Attributes of a node, as stat(2) reports them. Times are nanoseconds since the epoch. */
export interface Attr {
  /** st_ino reported to the kernel; defaults to the node's `ino`. */
  ino?: bigint;
  /** File type and permission bits (S_IFREG | 0o644, ...). */
  mode: number;
  nlink?: number;
  uid?: number;
  gid?: number;
  /** st_rdev of a device node, as stat(2) reports it (32 bits). */
  rdev?: number;
  size?: bigint | number;
  /** 512-byte blocks; defaults to ceil(size / 512). */
  blocks?: bigint | number;
  blksize?: number;
  atimeNs?: bigint;
  mtimeNs?: bigint;
  ctimeNs?: bigint;
}

/**
 * A negative errno (-2 for ENOENT), the one way besides throwing a
 * StrataError that a handler says no.
 */
export type NegativeErrno = number;

/** What a handler returns: a value, a negative errno, or a promise of either. */
export type Answer<T> = T | NegativeErrno | Promise<T | NegativeErrno>;

/** How long the kernel and the native cache may keep an answer (seconds; Infinity allowed). */
export interface Lifetimes {
  /** Kernel dentry timeout; defaults to the session's entryTimeout. */
  entryTimeout?: number;
  /** Kernel attribute timeout; defaults to the session's attrTimeout. */
  attrTimeout?: number;
  /**
   * How long the native cache answers this again without JavaScript: 0 (the
   * default for handler answers) keeps nothing, Infinity keeps it until the
   * kernel forgets the node and the cache limit evicts it.
   */
  cacheTtl?: number;
}

/** The answer to a lookup. */
export interface Entry extends Lifetimes {
  ino: bigint;
  attr: Attr;
}

/** One name of a directory listing. */
export interface DirEntry {
  /** The name as bytes: 1..255 bytes, no '/' or NUL. */
  name: Buffer;
  ino: bigint;
  /** With attributes, READDIRPLUS primes the kernel's dentry and inode; without, only the name is listed. */
  attr?: Attr;
  /** File type bits (S_IFDIR, ...) when attr is absent. */
  mode?: number;
}

/** A whole directory listing ("." and ".." are added by the session). */
export interface Listing extends Lifetimes {
  entries: DirEntry[];
  /** st_ino of "."; defaults to the directory's cached attributes or its ino. */
  dotIno?: bigint;
  /** st_ino of ".."; defaults to that of ".". */
  dotdotIno?: bigint;
}

export interface AttrAnswer {
  attr: Attr;
  attrTimeout?: number;
  cacheTtl?: number;
}

export interface LinkAnswer {
  target: Buffer;
  cacheTtl?: number;
}

export interface StatFs {
  blocks: bigint | number;
  bfree: bigint | number;
  bavail: bigint | number;
  files: bigint | number;
  ffree: bigint | number;
  bsize: number;
  frsize?: number;
  namelen?: number;
  /** How long the native side answers statfs again by itself (seconds). */
  cacheTtl?: number;
}

/** Who asked (the kernel's view of the calling process). */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
}

/**
 * The filesystem behind a session. Every handler runs on the JavaScript
 * thread and only for what the native cache cannot answer. A handler that
 * never settles leaves its caller waiting until the caller is interrupted
 * (the session then answers EINTR) or the session is unmounted.
 */
export interface FuseHandlers {
  lookup(parent: bigint, name: Buffer, caller: Caller): Answer<Entry>;
  getattr(ino: bigint, caller: Caller): Answer<AttrAnswer>;
  /** The whole listing; the session pages it for the kernel. */
  readdir(ino: bigint, caller: Caller): Answer<Listing>;
  /** Up to size bytes at offset (fewer only at the end of the file). fh is unique per open (0 with kernelOpens). */
  read(ino: bigint, fh: bigint, offset: bigint, size: number, caller: Caller): Answer<Buffer>;
  readlink?(ino: bigint, caller: Caller): Answer<Buffer | LinkAnswer>;
  /** The value of one xattr; -ENODATA when the node has none of that name. */
  getxattr?(ino: bigint, name: Buffer, caller: Caller): Answer<Buffer>;
  listxattr?(ino: bigint, caller: Caller): Answer<Buffer[]>;
  statfs?(ino: bigint, caller: Caller): Answer<StatFs>;
  /** Nodes the kernel no longer references (batched). */
  forget?(inos: bigint[]): void;
  /** A file handle was closed. */
  release?(ino: bigint, fh: bigint): void;
  /**
   * A file was opened (told after the session answered the OPEN natively,
   * so it never delays one): who opened which node, for an audit trail.
   * Refused with kernelOpens (the session sees no OPEN to tell of).
   */
  opened?(ino: bigint, fh: bigint, caller: Caller): void;
  /**
   * Asked at the first OPEN of a node that has no file data registered,
   * when passthrough was negotiated (once per node, while the session
   * remembers it): a handler that registers the file with setFileData()
   * before it settles makes this very open, and later ones, passthrough.
   * The OPEN is answered natively whatever it does (a rejection or the
   * request deadline included); without this handler OPENs never wait.
   * Never called with kernelOpens (no passthrough, no OPEN).
   */
  open?(ino: bigint, caller: Caller): void | Promise<void>;
}

/**
 * How a file registered with setFileData() reaches readers, never through
 * JavaScript: 'passthrough' hands it to the kernel (FUSE passthrough; fails
 * with EOPNOTSUPP where not negotiated), 'pread' keeps a dup of the fd and
 * answers each READ by pread(2) on a reader thread, 'auto' is passthrough
 * where negotiated and pread elsewhere.
 */
export type DataServing = 'auto' | 'passthrough' | 'pread';

export interface MountOptions {
  /** Reader threads (each with its own /dev/fuse fd); default 4. */
  threads?: number;
  /** The ino handlers see for the root; default 1n. */
  rootIno?: bigint;
  /** Attributes of the root, cached for the session (so the first stat needs no JavaScript). */
  rootAttr?: Attr;
  /** Source shown in /proc/mounts; default "strata". */
  fsName?: string;
  /** Filesystem subtype (fuse.<subtype>); default "strata". */
  subtype?: string;
  exec?: boolean;
  suid?: boolean;
  dev?: boolean;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  /** Sealed content: keep page cache and the kernel's readdir cache across opens. */
  keepCache?: boolean;
  /** READDIRPLUS: always (default), auto (the kernel decides), never. */
  readdirplus?: 'always' | 'auto' | 'never';
  /** Kernel timeouts (seconds) for answers that do not name their own. */
  entryTimeout?: number;
  attrTimeout?: number;
  /** Kernel timeout of negative lookups (ENOENT); 0 keeps none. */
  negativeTimeout?: number;
  /** Native cache lifetime of negative lookups answered by JavaScript; default 0. */
  negativeCacheTtl?: number;
  /** Weight (roughly entries) the native cache keeps for nodes the kernel does not reference; default 1M. */
  cacheLimit?: number;
  /** Requests of up to maxPages * 4 KiB; default 256 (1 MiB). */
  maxPages?: number;
  /**
   * The kernel's readahead for the mount (its bdi's read_ahead_kb), set
   * once INIT is done: default maxPages * 4, so a buffered sequential
   * reader's READs come as large as the session takes them (FUSE offers
   * 128 KiB at INIT and an answer cannot raise it). 0 keeps the kernel's.
   * Needs root; elsewhere the kernel's value stays (FuseSession.readaheadKb).
   */
  readaheadKb?: number;
  /**
   * Negotiate FUSE passthrough when the kernel offers it (default true), so
   * setPassthrough() can hand files to the kernel; see passthroughAvailable.
   */
  passthrough?: boolean;
  /** How setFileData() serves a registered file; default 'auto'. See DataServing. */
  dataServing?: DataServing;
  /**
   * pread registrations kept at once: each holds an fd of this process, so
   * past this many the least recently read one is let go (its READs come to
   * handlers.read again until it is registered anew; stats().preadEvictions).
   * Default: an eighth of RLIMIT_NOFILE, 64..4096.
   */
  preadFiles?: number;
  /**
   * The kernel opens files itself (default false): the first OPEN of a file
   * is answered ENOSYS, which the kernel remembers for the connection's life
   * (FUSE_NO_OPEN_SUPPORT, protocol 7.23), so no OPEN or RELEASE of a file
   * costs a round trip again and every open keeps the page cache (a warm
   * re-read never reaches the session). In exchange: no passthrough (it
   * needs an OPEN's answer; not negotiated, setFileData() 'auto' is pread,
   * 'passthrough' EOPNOTSUPP), fh 0 in every READ, no `opened` (refused:
   * EINVAL) nor `open` (never called) handler, and `keepCache` required
   * (EINVAL without: the kernel keeps each file's pages across opens).
   * Directories are opened as before. Where the kernel does not offer it,
   * OPENs are answered as usual: stats().kernelOpens says which. Fixed for
   * the connection: adopt() follows the handover state, whatever it is told.
   */
  kernelOpens?: boolean;
  /** One /dev/fuse fd per thread (FUSE_DEV_IOC_CLONE); default true. */
  cloneFd?: boolean;
  /**
   * Mount on the directory this descriptor holds (opened O_DIRECTORY |
   * O_NOFOLLOW and checked by the caller) rather than looking the path up
   * again: whoever owns the path could swap a symlink in between. The path
   * given to mount() stays the name the session unmounts by. The descriptor
   * may be closed once mount() has returned.
   */
  mountpointFd?: number;
  /**
   * The mount's owner (default: this process's uid and gid). Without
   * allowOther the kernel lets only processes of this uid and gid in, so a
   * mount made by root for one user is that user's alone.
   */
  owner?: { uid: number; gid: number };
  /** Called with what a handler threw that is not a StrataError (answered EIO). */
  onError?: (err: unknown, op: string) => void;
  /**
   * A request handed to a handler and not answered within this many
   * milliseconds is answered EIO by a native thread (so a wedged JavaScript
   * thread is bounded too); the late answer is dropped (stats().lateReplies).
   * 0 or undefined: wait as long as the handler takes (a hard mount).
   */
  requestTimeoutMs?: number;
  /**
   * A file (in a directory only the server writes) where the session keeps,
   * mapped shared and updated in place, how each ino is open (cached or
   * through which passthrough backing id) and its passthrough registrations.
   * It outlives a crash of the process (the page cache keeps it), so
   * FuseSession.adopt() given the same path learns from it what
   * handoverState().files would have said: without it, a successor of a
   * passthrough mount that died has OPENs of files still open fail (EIO).
   * Made anew by mount(), read and made anew by adopt() (unless the state
   * has files); the caller removes it once the mount is gone.
   */
  openModesFile?: string;
  /** Inos the open-modes file holds (default 65536): past that, no new passthrough opens. */
  openModesCapacity?: number;
}

/** FuseSession.adopt()'s options: those of a mount, and the inos the kernel may still hold. */
export interface AdoptOptions extends MountOptions {
  /**
   * Inos the session before handed to the kernel (the agent's journal):
   * they count as live (liveInos()) until the kernel's first FORGET of each.
   */
  adoptedInos?: Iterable<bigint>;
}

/**
 * What a successor needs to serve a connection it did not mount
 * (FuseSession.handoverState()): JSON-safe, versioned. Another format or
 * version is refused by FuseSession.adopt() (EINVAL).
 */
export interface SessionHandover {
  format: 'strata-fuse-handover';
  version: 1;
  /** The mount point as mounted. */
  mountpoint: string;
  /** major << 20 | minor, as FuseSession.connection. */
  connection: number;
  device: { major: number; minor: number } | null;
  /** What INIT agreed on: a successor cannot ask the kernel again. */
  negotiated: {
    minor: number;
    /** INIT flags | flags2 << 32, a bigint in decimal. */
    flags: string;
    maxWrite: number;
    maxPages: number;
    passthrough: boolean;
    /**
     * The kernel opens files itself on this connection (MountOptions.kernelOpens,
     * where the kernel offered it): it keeps that for the connection's life, so
     * a successor answers OPENs the same way. Absent (an older writer): false.
     */
    kernelOpens?: boolean;
    /** Which session of the connection wrote this (0: the mounting one); a successor is one more. */
    generation: number;
  };
  /** The options that shape answers, so a successor answers like before (adopt()'s own options win). */
  options: HandoverOptions;
  /**
   * Present once the session has been released (a live session's would be
   * stale at once): how files are open and the passthrough backing ids left
   * open in the kernel, which the successor then owns. Absent (an older
   * writer, a crash): the successor knows of none.
   */
  files?: HandedFiles;
}

/**
 * FUSE passthrough across a takeover. An inode open through passthrough
 * takes only passthrough opens with the same backing id, one with cached
 * opens takes none; backing ids belong to the connection and outlive the
 * session that opened them.
 */
export interface HandedFiles {
  /** Every ino with files open: how many cached and passthrough opens, and the backing id these share (-1: none). */
  opens: { ino: string; cached: number; passthrough: number; backingId: number }[];
  /** Every passthrough registration (setFileData): ino and its backing id. */
  backings: { ino: string; backingId: number }[];
}

/** The MountOptions a handover carries (rootIno as a decimal string: JSON has no bigint). */
export interface HandoverOptions {
  rootIno: string;
  fsName: string;
  subtype: string;
  threads: number;
  keepCache: boolean;
  readdirplus: 'always' | 'auto' | 'never';
  entryTimeout: number;
  attrTimeout: number;
  negativeTimeout: number;
  negativeCacheTtl: number;
  cacheLimit: number;
  passthrough: boolean;
  dataServing: DataServing;
  cloneFd: boolean;
  requestTimeoutMs: number;
}

export interface SessionStats {
  /** nodeids the kernel holds. */
  nodes: number;
  /** inos with cached data. */
  cached: number;
  /** of those, the ones the kernel does not reference (the bounded part). */
  unreferenced: number;
  cacheWeight: number;
  negatives: number;
  evictions: number;
  /** requests read from the kernel / answered natively / handed to JavaScript / not yet answered. */
  requests: number;
  native: number;
  toJs: number;
  pending: number;
  interrupts: number;
  openDirs: number;
  protocolMinor: number;
  maxPages: number;
  initFlags: number;
  /** Whether FUSE passthrough was negotiated. */
  passthrough: boolean;
  /** Whether the kernel opens files itself (MountOptions.kernelOpens, offered by the kernel; adopted: the connection's). */
  kernelOpens: boolean;
  /** OPENs and RELEASEs of files that reached the session (kernelOpens: the first OPEN or so, no RELEASE). */
  opens: number;
  releases: number;
  /** inos with a passthrough backing file. */
  backings: number;
  /** inos with file data registered (setFileData/setPassthrough), passthrough or pread. */
  fileData: number;
  /** READs answered by pread(2) from a registered file, on a reader thread. */
  preadReads: number;
  /** READs answered EIO because pread(2) of the registered file failed. */
  preadErrors: number;
  /** pread registrations let go, least recently read first, to stay within preadFiles. */
  preadEvictions: number;
  /** Invalidation notices not yet taken by the kernel. */
  notices: number;
  /** Requests answered EIO because no handler answered within requestTimeoutMs. */
  timeouts: number;
  /** Handler answers that came after their request stopped waiting (timed out, interrupted, released): dropped. */
  lateReplies: number;
  /** Requests release() left unanswered for a successor to be resent. */
  handedOver: number;
  /** Adopted sessions: the errno of FUSE_NOTIFY_RESEND (0: sent); -1 for a session that mounted. */
  resendErrno: number;
  /** release() has run. */
  released: boolean;
  /** The open-modes file (openModesFile). */
  openModes: OpenModesStats;
}

/** How a session learnt how files are open, and the open-modes file it keeps. */
export interface OpenModesStats {
  /** adopt(): from the state's files, the open-modes file, or nothing ('none': no new passthrough opens). */
  restoredFrom: 'files' | 'table' | 'none';
  /** Why the open-modes file was not used or not kept ('' when it was). */
  problem: string;
  restoredOpens: number;
  restoredBackings: number;
  /** Inos it holds now, and how many it can (0: none kept). */
  records: number;
  capacity: number;
  /** An open went unrecorded (it was full), now or before a takeover: no OPEN is answered passthrough anew. */
  overflowed: boolean;
}

/**
 * Why a session ended: unmount() or detach() by us, or the kernel (external
 * unmount, abort, DESTROY), or release() (the connection lives on for a successor).
 */
export type EndReason = 'unmount' | 'kernel' | 'destroy' | 'error' | 'released';

/**
 * One run of a file registered with setFileRuns(): length bytes at offset
 * of the file, read from fds[file] at fileOffset, or zeros (a hole: no file).
 */
export interface FileRun {
  offset: number;
  length: number;
  /** Index into the fds given with the runs; absent for a hole. */
  file?: number;
  /** Where the run starts in fds[file]; 0 when absent. */
  fileOffset?: number;
}
