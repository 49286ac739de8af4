// fuse-native ships no types; this declares the part strata's FUSE servers use (the agent, the benchmark's passthrough).
declare module 'fuse-native' {
  namespace Fuse {
    type Callback<T = void> = T extends void ? (code: number) => void : (code: number, value?: T) => void;
    interface Stat {
      mode: number;
      uid: number;
      gid: number;
      size: number;
      dev: number;
      nlink: number;
      ino: number;
      rdev: number;
      blksize: number;
      blocks: number;
      /** Milliseconds since the epoch: fuse-native carries no finer time. */
      atime: number;
      mtime: number;
      ctime: number;
    }
    interface StatFs {
      bsize: number;
      frsize: number;
      blocks: number;
      bfree: number;
      bavail: number;
      files: number;
      ffree: number;
      favail: number;
      fsid: number;
      flag: number;
      namemax: number;
    }
    interface Ops {
      init?(cb: (code: number) => void): void;
      getattr?(path: string, cb: (code: number, stat?: Stat) => void): void;
      readdir?(path: string, cb: (code: number, names?: string[], stats?: Stat[]) => void): void;
      readlink?(path: string, cb: (code: number, target?: string) => void): void;
      open?(path: string, flags: number, cb: (code: number, fd?: number) => void): void;
      release?(path: string, fd: number, cb: (code: number) => void): void;
      read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrCode: number) => void): void;
      statfs?(path: string, cb: (code: number, statfs?: StatFs) => void): void;
      getxattr?(path: string, name: string, position: number, cb: (code: number, value?: Buffer) => void): void;
      listxattr?(path: string, cb: (code: number, names?: string[]) => void): void;
      write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrCode: number) => void): void;
      create?(path: string, mode: number, cb: (code: number) => void): void;
      truncate?(path: string, size: number, cb: (code: number) => void): void;
      ftruncate?(path: string, fd: number, size: number, cb: (code: number) => void): void;
      chmod?(path: string, mode: number, cb: (code: number) => void): void;
      chown?(path: string, uid: number, gid: number, cb: (code: number) => void): void;
      utimens?(path: string, atime: number, mtime: number, cb: (code: number) => void): void;
      mknod?(path: string, mode: number, dev: number, cb: (code: number) => void): void;
      mkdir?(path: string, mode: number, cb: (code: number) => void): void;
      rmdir?(path: string, cb: (code: number) => void): void;
      unlink?(path: string, cb: (code: number) => void): void;
      rename?(src: string, dest: string, cb: (code: number) => void): void;
      link?(src: string, dest: string, cb: (code: number) => void): void;
      symlink?(src: string, dest: string, cb: (code: number) => void): void;
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: (code: number) => void): void;
      removexattr?(path: string, name: string, cb: (code: number) => void): void;
    }
    interface Options {
      /** Per-operation timeout in ms after which fuse-native answers ETIMEDOUT; false for none. */
      timeout?: number | false;
      debug?: boolean;
    }
    /** What fuse-native's handlers pass to answer the kernel. */
    type Signal = (code: number, ...values: unknown[]) => void;
  }
  class Fuse {
    constructor(mnt: string, ops: Fuse.Ops, opts?: Fuse.Options);
    readonly mnt: string;
    readonly ops: Fuse.Ops;
    /** Native state of the mount (fuse_thread_t), set while mounted. */
    _thread: Buffer | null;
    mount(cb: (err: Error | null) => void): void;
    /** Builds the "-o a,b,c" argument handed to libfuse; overridable. */
    _fuseOptions(): string;
    _op_getxattr(signal: Fuse.Signal, path: string, name: string, valueBuf: Buffer, position: number): void;
    _op_listxattr(signal: Fuse.Signal, path: string, listBuf: Buffer): void;
  }
  export = Fuse;
}
