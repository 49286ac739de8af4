/**
 * The addon (native/addon.cc), loaded once, and the exact shape of what it
 * exchanges with JavaScript. Nothing outside this package sees these types.
 */
import { join } from 'node:path';

export const EV_REQUEST = 0;
export const EV_FORGET = 1;
export const EV_RELEASE = 2;
export const EV_END = 3;
export const EV_NOTIFIED = 4;
export const EV_OPEN = 5;

/** setFileData modes and results (native/session.h DataServing). */
export const SERVE_AUTO = 0;
export const SERVE_PASSTHROUGH = 1;
export const SERVE_PREAD = 2;

export interface NativeRequest {
  kind: typeof EV_REQUEST;
  id: number;
  op: number;
  ino: bigint;
  name?: Buffer;
  fh: bigint;
  offset: bigint;
  size: number;
  uid: number;
  gid: number;
  pid: number;
}

export type NativeEvent =
  | NativeRequest
  | { kind: typeof EV_FORGET; inos: bigint[] }
  | { kind: typeof EV_RELEASE; ino: bigint; fh: bigint }
  | { kind: typeof EV_OPEN; ino: bigint; fh: bigint; uid: number; gid: number; pid: number }
  | { kind: typeof EV_END; reason: string }
  /** An invalidation notice was written: errno 0 (the kernel dropped something) or the write's errno. */
  | { kind: typeof EV_NOTIFIED; token: number; errno: number };

export interface NativeMountOptions {
  mountpoint: string;
  fsName?: string;
  subtype?: string;
  threads?: number;
  rootIno?: bigint;
  exec?: boolean;
  suid?: boolean;
  dev?: boolean;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  keepCache?: boolean;
  readdirplus?: number;
  cloneFd?: boolean;
  cacheLimit?: number;
  negativeTimeout?: number;
  notifyForget?: boolean;
  notifyRelease?: boolean;
  notifyOpen?: boolean;
  /** First OPENs of unregistered nodes are asked of handlers.open (answered with replyOpen). */
  openHook?: boolean;
  ownerUid?: number;
  ownerGid?: number;
  maxPages?: number;
  passthrough?: boolean;
  /** OPENs of files answered ENOSYS: the kernel opens files itself (FUSE_NO_OPEN_SUPPORT). */
  kernelOpens?: boolean;
  /** pread registrations kept at once (0: an eighth of RLIMIT_NOFILE, 64..4096). */
  preadFiles?: number;
  dataServing?: number;
  requestTimeoutMs?: number;
  openModesFile?: string;
  openModesCapacity?: number;
  /** Which session of the connection (0: the mounting one); the top bits of its fhs. */
  generation?: number;
}

/** NativeSession's third argument: serve this connection instead of mounting (native/adopt.cc). */
export interface NativeAdopt {
  fd: number;
  minor: number;
  flags: bigint;
  maxPages: number;
  passthrough: boolean;
  kernelOpens: boolean;
  adopted: BigUint64Array;
  files?: NativeHandedFiles;
}

/** HandedFiles as the addon takes and gives them: openModes holds cached, passthrough, backingId per key. */
export interface NativeHandedFiles {
  opens: BigUint64Array;
  openModes: Int32Array;
  backings: BigUint64Array;
  backingIds: Int32Array;
}

export interface NativeNegotiated {
  minor: number;
  flags: bigint;
  maxPages: number;
  maxWrite: number;
  passthrough: boolean;
  kernelOpens: boolean;
  generation: number;
}

/** Reply calls return 0, or a negative errno when the request no longer waits (-ENOENT) or the answer did not fit. */
export interface NativeSession {
  replyError(id: number, errno: number): number;
  replyEntry(id: number, ino: bigint, attr: Buffer, entryTimeout: number, attrTimeout: number, cacheTtl: number): number;
  replyNegative(id: number, entryTimeout: number, cacheTtl: number): number;
  replyAttr(id: number, attr: Buffer, attrTimeout: number, cacheTtl: number): number;
  replyListing(id: number, listing: Buffer, entryTimeout: number, attrTimeout: number, cacheTtl: number): number;
  replyData(id: number, data: Buffer): number;
  replyLink(id: number, target: Buffer, cacheTtl: number): number;
  replyXattr(id: number, bytes: Buffer): number;
  replyStatfs(id: number, statfs: Buffer, cacheTtl: number): number;
  /** The open handler settled: the OPEN is answered from what is registered now. */
  replyOpen(id: number): number;
  cacheEntry(
    parent: bigint,
    name: Buffer,
    ino: bigint,
    attr: Buffer,
    entryTimeout: number,
    attrTimeout: number,
    cacheTtl: number,
  ): void;
  cacheNegative(parent: bigint, name: Buffer, entryTimeout: number, cacheTtl: number): void;
  cacheAttr(ino: bigint, attr: Buffer, attrTimeout: number, cacheTtl: number): void;
  cacheListing(ino: bigint, listing: Buffer, entryTimeout: number, attrTimeout: number, cacheTtl: number): void;
  cacheLink(ino: bigint, target: Buffer, cacheTtl: number): void;
  cacheXattrs(ino: bigint, xattrs: Buffer, cacheTtl: number): void;
  cacheStatfs(statfs: Buffer, cacheTtl: number): void;
  uncache(ino: bigint): void;
  /** Registers fd as ino's data: SERVE_PASSTHROUGH or SERVE_PREAD (how it is served), or a negative errno. */
  setFileData(ino: bigint, fd: number, mode: number): number;
  /** 0, or -ENOENT when nothing was registered. */
  clearFileData(ino: bigint): number;
  /** runs: [offset, length, file (-1 hole), fileOffset] per run. */
  setFileRuns(ino: bigint, fds: Int32Array, runs: Float64Array, size: number): number;
  /** A token (> 0) an EV_NOTIFIED event settles, 0 when the kernel holds no node to invalidate, or a negative errno. */
  invalidateInode(ino: bigint, offset: bigint, length: bigint): number;
  invalidateEntry(parent: bigint, name: Buffer): number;
  stats(): Record<string, unknown>;
  liveKeys(): BigUint64Array;
  close(): void;
  /** Stops serving, the connection kept: 0 done, 1 an EV_END 'released' follows, or a negative errno. */
  release(): number;
  /** The fds the readers read from, master first. */
  fds(): number[];
  negotiated(): NativeNegotiated;
  /** What release() left in the kernel for a successor (empty before). */
  handed(): NativeHandedFiles;
}

/** A row of native/opcodes.cc as the addon lists it. */
export interface NativeOpcode {
  opcode: number;
  name: string;
  /** JsAnswer (src/ops.ts): what JavaScript answers it with; 0 when it never reaches JavaScript. */
  js: number;
  /** The request carries a name (LOOKUP, GETXATTR). */
  hasName: boolean;
  /** The native cache may answer it. */
  cached: boolean;
  /** The errno that refuses it on the reader thread (EROFS, ENOSYS); 0 when a handler serves it. */
  refuse: number;
}

export interface NativeModule {
  NativeSession: new (options: NativeMountOptions, onEvents: (events: NativeEvent[]) => void, adopt?: NativeAdopt) => NativeSession;
  /** A copy of process pid's fd (same open file) by pidfd_getfd(2); throws an Error with `errno`. */
  takeFd(pid: number, fd: number): number;
  /** What adopt() would take from an open-modes file (MountOptions.openModesFile); ok false with the problem when it would ignore it. */
  readOpenTable(path: string): {
    ok: boolean;
    problem: string;
    generation: number;
    overflowed: boolean;
    opens: [bigint, number, number, number][];
    registered: [bigint, number][];
  };
  /** umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW): 0 or an errno. */
  umount(path: string): number;
  /** getsockopt(fd, SO_PEERCRED) of a connected unix socket; throws an Error with `errno`. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** One datagram to a unix datagram socket (sd_notify(3)); throws an Error with `errno`. */
  sdNotify(socketPath: string, text: string): void;
  /** The native opcode table (native/opcodes.cc), one row per known opcode. */
  opcodes: NativeOpcode[];
  protocolMinor: number;
  attrSize: number;
  statfsSize: number;
}

let loaded: NativeModule | undefined;

/** The addon, built by `npm install` (node-gyp) into build/Release. */
export function addon(): NativeModule {
  if (!loaded) {
    const module = { exports: {} as NativeModule };
    process.dlopen(module, join(__dirname, '..', 'build', 'Release', 'fuse_kernel.node'));
    loaded = module.exports;
  }
  return loaded;
}
