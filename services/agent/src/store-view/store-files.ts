import type { promises as fs, BigIntStats } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';
import type { StoreFileIdentity } from '@strata/client';
import type { BeneathRoot } from './beneath';
import { HeldHandles } from './held-handles';
import { StoreFd } from './store-fd';

/** Store files held open at once (image files and the busiest `dir:` files). */
const DEFAULT_OPEN_FILES = 256;

/**
 * Whether a file opened here is the one the resolver mapped: the same
 * inode, size and modification time, and the same device where device
 * numbers compare (the store seen on the same mount). Anything else — a
 * file swapped in since, a copy, another store — is refused.
 */
export function sameFile(st: BigIntStats, f: StoreFileIdentity, devComparable: boolean): boolean {
  return (
    st.ino === BigInt(f.ino) &&
    st.size === BigInt(f.size) &&
    st.mtimeNs === BigInt(f.mtimeSec) * 1_000_000_000n + BigInt(f.mtimeNsec) &&
    (!devComparable || st.dev === BigInt(f.dev))
  );
}

/**
 * Store files opened beneath the store root and kept open (bounded, least
 * recently used closed first, never one a read is using), each checked
 * against the identity the map gave before a byte is read from it.
 */
export class StoreFiles {
  private readonly held: HeldHandles<{ fh: fs.FileHandle; st: BigIntStats }>;

  constructor(
    private readonly root: BeneathRoot,
    private readonly devComparable: boolean,
    maxOpen = DEFAULT_OPEN_FILES,
  ) {
    this.held = new HeldHandles(maxOpen, (path) => root.openFile(path), ({ fh }) => fh.close());
  }

  /** Runs `fn` with the file open, after checking it is the file `id` names. */
  async with<T>(id: StoreFileIdentity, fn: (fh: fs.FileHandle) => Promise<T>): Promise<T> {
    return this.held.use(id.path, async ({ fh, st }) => {
      if (!sameFile(st, id, this.devComparable)) {
        // Opened again next time: the map may be the newer one.
        this.forget(id.path);
        this.root.forgetDirOf(id.path);
        throw new StrataError(Errno.ESTALE, `store file ${id.path} is not the file the resolver mapped (ino ${st.ino}, size ${st.size} here; ino ${id.ino}, size ${id.size} mapped)`);
      }
      return fn(fh);
    });
  }

  /** A bare descriptor of its own on the file `id` names (the caller closes it; opened, stated and closed in line on a local store), checked as `with` checks. */
  async openCheckedFd(id: StoreFileIdentity): Promise<StoreFd> {
    const { fd, st, local } = await this.root.openFd(id.path);
    const handle = new StoreFd(fd, local);
    if (!sameFile(st, id, this.devComparable)) {
      await handle.close().catch(() => undefined);
      this.root.forgetDirOf(id.path);
      throw new StrataError(Errno.ESTALE, `store file ${id.path} is not the file the resolver mapped`);
    }
    return handle;
  }

  /** Forgets a file (a map named it differently: opened again next time). */
  forget(path: string): void {
    this.held.forget(path);
  }

  get openCount(): number {
    return this.held.size;
  }

  async close(): Promise<void> {
    await this.held.closeAll();
  }
}
