import type { StoreFileIdentity } from '@strata/client';
import { Errno, StrataError } from '@strata/errors';
import type { FileRun } from '@strata/fuse-kernel';
import type { StoreFd } from './store-fd';

/** A store file open for a RunsFile: its descriptor, positional reads, and the release of this use. */
export interface RunStoreFile {
  readonly fd: number;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/**
 * A layer file that is runs of several store files and holes (an image
 * layer's file: DATA runs at offsets of base.qcow2 / snapshot.qcow2), each
 * store file open and checked against the map (LayerReader.runsFile), for
 * the session to serve by its own preads (FuseSession.setFileRuns). Reads
 * here answer what comes before the registration. The caller closes it.
 */
export class RunsFile {
  constructor(
    private readonly files: readonly RunStoreFile[],
    readonly runs: readonly FileRun[],
    readonly size: number,
  ) {}

  /** The store files' descriptors, in the order runs name them. */
  get fds(): number[] {
    return this.files.map((f) => f.fd);
  }

  /** Up to `length` bytes of the layer file at `position` into `buffer` at `offset` (short at its end). */
  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    const end = Math.min(this.size, position + length);
    if (position >= end) return { bytesRead: 0 };
    let lo = 0;
    let hi = this.runs.length - 1;
    // The last run starting at or before position.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.runs[mid].offset <= position) lo = mid;
      else hi = mid - 1;
    }
    let pos = position;
    for (let i = lo; i < this.runs.length && pos < end; i++) {
      const r = this.runs[i];
      const n = Math.min(end, r.offset + r.length) - pos;
      const at = offset + (pos - position);
      if (r.file === undefined) {
        buffer.fill(0, at, at + n);
      } else {
        const fh = this.files[r.file];
        const from = (r.fileOffset ?? 0) + (pos - r.offset);
        // Bounded: every pass reads at least one byte or stops.
        for (let done = 0; done < n; ) {
          const { bytesRead } = await fh.read(buffer, at + done, n - done, from + done);
          if (bytesRead === 0) throw new StrataError(Errno.EIO, `store file ends before ${from + done}`);
          done += bytesRead;
        }
      }
      pos += n;
    }
    return { bytesRead: pos - position };
  }

  /** Closes every store file (once each). */
  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close().catch(() => undefined)));
  }
}

/** Store files held open at once, and how long one no RunsFile uses stays open. */
const MAX_HELD = 16;
export const HELD_IDLE_MS = 1000;

interface Held {
  opening: Promise<StoreFd>;
  users: number;
  idleSince: number;
}

/** The identity a store file is held under: the same path with another inode, size or time is another file. */
function identityKey(id: StoreFileIdentity): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtimeSec}.${id.mtimeNsec}:${id.path}`;
}

/**
 * Store files RunsFiles use, opened and checked once for a run of
 * hand-overs rather than once per file: an image layer's files all name
 * the same one or two image files. A file is held under its full identity
 * (path, device, inode, size, modification time), so a map that names it
 * otherwise (the file replaced or rewritten since) opens and checks it
 * afresh; one no RunsFile has used for HELD_IDLE_MS is closed. At most
 * MAX_HELD are held; past that each use opens its own.
 */
export class HeldRunFiles {
  private readonly held = new Map<string, Held>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly open: (id: StoreFileIdentity) => Promise<StoreFd>) {}

  /** A use of the store file `id` names, opened and checked (or held already); its close releases it. */
  async use(id: StoreFileIdentity): Promise<RunStoreFile> {
    const k = identityKey(id);
    let h = this.held.get(k);
    if (h === undefined) {
      if (this.held.size >= MAX_HELD) return this.open(id);
      const made: Held = { opening: this.open(id), users: 0, idleSince: 0 };
      this.held.set(k, made);
      made.opening.catch(() => {
        if (this.held.get(k) === made) this.held.delete(k);
      });
      h = made;
    }
    const mine = h;
    mine.users++;
    let fd: StoreFd;
    try {
      fd = await mine.opening;
    } catch (err) {
      mine.users--;
      throw err;
    }
    let released = false;
    return {
      fd: fd.fd,
      read: (buffer, offset, length, position) => fd.read(buffer, offset, length, position),
      close: () => {
        if (!released) {
          released = true;
          if (--mine.users === 0) {
            mine.idleSince = performance.now();
            this.sweepLater();
          }
        }
        return Promise.resolve();
      },
    };
  }

  /** Files held now (open or opening). */
  get size(): number {
    return this.held.size;
  }

  /** Closes every held file no RunsFile uses (those in use are closed once released and idle). */
  async closeIdle(olderThanMs = 0): Promise<void> {
    const now = performance.now();
    const closing: Promise<void>[] = [];
    for (const [k, h] of this.held) {
      if (h.users > 0 || now - h.idleSince < olderThanMs) continue;
      this.held.delete(k);
      closing.push(h.opening.then((fd) => fd.close(), () => undefined));
    }
    await Promise.all(closing);
  }

  private sweepLater(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setTimeout(() => {
      this.sweeper = undefined;
      void this.closeIdle(HELD_IDLE_MS).finally(() => {
        if ([...this.held.values()].some((h) => h.users === 0)) this.sweepLater();
      });
    }, HELD_IDLE_MS);
    // Nothing waits on it: an agent exiting does not wait for held files to close.
    this.sweeper.unref();
  }
}
