import { Errno, StrataError } from '@strata/errors';
import { isRegMode } from '@strata/posix';
import type { NodeRecord, ReadResponse } from '@strata/protocol';
import { printable } from '@strata/traversal';
import { inSpan } from '@strata/telemetry';
import type { ChainView } from '../chains';

const STORE_SPAN = { childOnly: true };

/**
 * File contents. A sealed chain reads straight from the location its cached
 * record names (no lookup, open files reused by the source); a LIVE chain
 * looks the path up again, since the file may have been replaced.
 */
export class FileData {
  /** File bytes answered (metrics read it; nothing else does). */
  bytesServed = 0;

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
    const data = await source.readLocated(Buffer.from(rec.locations[0]), offset, want).catch((err: unknown) => {
      const e = StrataError.from(err);
      throw new StrataError(e.errno, `${e.message}: ${printable(canon)}`, { path: canon, code: e.code, cause: err });
    });
    return { offset, data, eof: offset + data.length >= size };
  }
}
