import * as path from 'node:path';
import Fuse from 'fuse-native';
import loadBinding from 'node-gyp-build';
import { fuseOptionList, type KernelOptions } from '@strata/agent-control';

const ERANGE = -34;
const ENODATA = -61;

/**
 * fuse-native with strata's option list and exact xattr buffer handling
 * (fuse-native copies a value into a buffer too small for it instead of
 * answering ERANGE).
 */
export class StrataFuse extends Fuse {
  constructor(
    mountpoint: string,
    ops: Fuse.Ops,
    private readonly kernel: KernelOptions,
    opTimeoutMs: number,
  ) {
    super(mountpoint, ops, { timeout: opTimeoutMs });
  }

  override _fuseOptions(): string {
    return `-o${fuseOptionList(this.kernel).join(',')}`;
  }

  override _op_getxattr(signal: Fuse.Signal, p: string, name: string, valueBuf: Buffer, position: number): void {
    this.ops.getxattr!(p, name, position, (code, value) => {
      if (code < 0) return signal(code, valueBuf.buffer);
      if (!value) return signal(ENODATA, valueBuf.buffer);
      if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer);
      if (value.length > valueBuf.length) return signal(ERANGE, valueBuf.buffer);
      value.copy(valueBuf);
      return signal(value.length, valueBuf.buffer);
    });
  }

  override _op_listxattr(signal: Fuse.Signal, p: string, listBuf: Buffer): void {
    this.ops.listxattr!(p, (code, names) => {
      if (code < 0 || !names) return signal(code < 0 ? code : 0, listBuf.buffer);
      const list = Buffer.concat(names.map((n) => Buffer.from(`${n}\0`)));
      if (listBuf.length === 0) return signal(list.length, listBuf.buffer);
      if (list.length > listBuf.length) return signal(ERANGE, listBuf.buffer);
      list.copy(listBuf);
      return signal(list.length, listBuf.buffer);
    });
  }

  /** Mounts; resolves once the kernel has sent FUSE_INIT (the mount answers). */
  mountAsync(): Promise<void> {
    return new Promise((resolve, reject) => this.mount((err) => (err ? reject(err) : resolve())));
  }

  /**
   * Releases fuse-native's hold on the event loop after the kernel mount is
   * gone (strata unmounts with umount(8) itself: fuse-native would run
   * `fusermount -uz`, which detaches even a busy mount). The native state
   * stays referenced for the life of the process: after a lazy unmount the
   * libfuse thread keeps serving open files from it, and freeing it under
   * that thread crashes the agent.
   */
  releaseNative(): void {
    if (!this._thread || released.has(this)) return;
    const binding = loadBinding(path.dirname(require.resolve('fuse-native')));
    binding.fuse_native_unmount(this.mnt, this._thread);
    released.add(this);
  }
}

/** Unmounted instances, kept alive on purpose (see releaseNative). A few KiB each. */
const released = new Set<StrataFuse>();
