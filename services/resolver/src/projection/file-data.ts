import { Errno, StrataError } from '@strata/errors';
import { isRegMode } from '@strata/posix';
import type { NodeRecord, ReadResponse } from '@strata/protocol';
import { printable } from '@strata/traversal';
import { inSpan } from '@strata/telemetry';
import type { ChainView } from '../chains';

const STORE_SPAN = { childOnly: true };

/** Answers at least this long are read into pooled buffers. */
export const POOLED_ANSWER_BYTES = 256 << 10;
/** Bytes of given-back answer buffers kept for reuse; beyond it they are left to the collector. */
export const MAX_POOLED_ANSWER_BYTES = 64 << 20;

/**
 * Buffers large answers are read into, given back by whoever wrote them
 * out last (the data stream, once the socket took them). A fresh 1 MiB
 * buffer per answer cost the resolver more than the read itself on a
 * sequential read (issue 28, a cold 1 GiB file: a full collection of
 * the heap per 64 MiB of outside memory, some 28% of its CPU samples, and
 * page faults on fresh memory in its threadpool's preads). A buffer never
 * given back (the gRPC Session's answers) is the collector's, as before.
 */
export class AnswerPool {
  private readonly made = new WeakSet<ArrayBufferLike>();
  private readonly inPool = new WeakSet<ArrayBufferLike>();
  private readonly free = new Map<number, Buffer[]>();
  private bytes = 0;

  constructor(private readonly maxBytes = MAX_POOLED_ANSWER_BYTES) {}

  /** A buffer of `length` bytes: a given-back one of that length if there is one. */
  take(length: number): Buffer {
    const reused = this.free.get(length)?.pop();
    if (reused) {
      this.inPool.delete(reused.buffer);
      this.bytes -= length;
      return reused;
    }
    const b = Buffer.allocUnsafeSlow(length);
    this.made.add(b.buffer);
    return b;
  }

  /**
   * `b` (a buffer take() made, whole, or a view of one from its start) is
   * no longer used by anyone; anything else, or a buffer given back
   * already, is ignored. False when it was not kept.
   */
  giveBack(b: Buffer): boolean {
    const ab = b.buffer;
    if (b.byteOffset !== 0 || !this.made.has(ab) || this.inPool.has(ab) || this.bytes + ab.byteLength > this.maxBytes) return false;
    const whole = Buffer.from(ab, 0, ab.byteLength);
    let list = this.free.get(whole.length);
    if (!list) this.free.set(whole.length, (list = []));
    list.push(whole);
    this.inPool.add(ab);
    this.bytes += whole.length;
    return true;
  }

  /** Bytes kept for reuse now. */
  get pooledBytes(): number {
    return this.bytes;
  }
}

/** The resolver's pool: FileData reads into it, the data stream gives back what it wrote. */
export const answerPool = new AnswerPool();

/**
 * File contents. A sealed chain reads straight from the location its cached
 * record names (no lookup, open files reused by the source); a LIVE chain
 * looks the path up again, since the file may have been replaced.
 */
export class FileData {
  /** File bytes answered (metrics read it; nothing else does). */
  bytesServed = 0;

  constructor(private readonly pool: AnswerPool = answerPool) {}

  async read(view: ChainView, canon: Buffer, rec: NodeRecord, offset: number, length: number): Promise<ReadResponse> {
    const r = await inSpan('store.read', () => ({ 'strata.path': printable(canon), 'strata.offset': offset, 'strata.length': length }), () => this.readData(view, canon, rec, offset, length), STORE_SPAN);
    this.bytesServed += r.data.length;
    return r;
  }

  private async readData(view: ChainView, canon: Buffer, rec: NodeRecord, offset: number, length: number): Promise<ReadResponse> {
    if (rec.directory) throw new StrataError(Errno.EISDIR, `is a directory: ${printable(canon)}`, { path: canon });
    if (!isRegMode(rec.attr?.mode ?? 0)) throw StrataError.invalid(`not a regular file: ${printable(canon)}`, canon);
    if (view.ttlMs !== undefined) {
      const r = await view.projection.read(canon, offset, length);
      return { offset, data: r.data, eof: r.eof };
    }
    const size = rec.attr?.size ?? 0;
    if (length === 0 || offset >= size) return { offset, data: Buffer.alloc(0), eof: offset >= size };
    const want = Math.min(length, size - offset);
    const source = view.projection.layers[rec.sourceLayer];
    if (!source || rec.locations.length === 0) throw StrataError.io(`cached record of ${printable(canon)} names no layer data`, { path: canon });
    const location = Buffer.from(rec.locations[0]);
    const located = (err: unknown): never => {
      const e = StrataError.from(err);
      throw new StrataError(e.errno, `${e.message}: ${printable(canon)}`, { path: canon, code: e.code, cause: err });
    };
    // Sources that read into the caller's buffer (LayerSource.readLocatedInto, optional) get a pooled one.
    if (want >= POOLED_ANSWER_BYTES && source.readLocatedInto) {
      const into = this.pool.take(want);
      let n: number;
      try {
        n = await source.readLocatedInto(location, into, offset, want);
      } catch (err) {
        this.pool.giveBack(into);
        return located(err);
      }
      if (!Number.isSafeInteger(n) || n < 0 || n > want) {
        this.pool.giveBack(into);
        throw StrataError.io(`the store answered ${n} bytes for ${want}: ${printable(canon)}`, { path: canon });
      }
      return { offset, data: into.subarray(0, n), eof: offset + n >= size };
    }
    const data = await source.readLocated(location, offset, want).catch(located);
    return { offset, data, eof: offset + data.length >= size };
  }
}
