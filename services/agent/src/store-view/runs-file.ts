import { Errno, StrataError } from '@strata/errors';
import type { FileRun } from '@strata/fuse-kernel';
import type { StoreFd } from './store-fd';

/**
 * A layer file that is runs of several store files and holes (an image
 * layer's file: DATA runs at offsets of base.qcow2 / snapshot.qcow2), each
 * store file open and checked against the map (LayerReader.runsFile), for
 * the session to serve by its own preads (FuseSession.setFileRuns). Reads
 * here answer what comes before the registration. The caller closes it.
 */
export class RunsFile {
  constructor(
    private readonly files: readonly StoreFd[],
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
