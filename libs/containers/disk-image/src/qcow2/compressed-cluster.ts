import { constants, inflateRaw } from 'node:zlib';
import { Decompress } from 'fzstd';
import { StrataError } from '@strata/errors';
import type { StoreFile } from '../store-file';

function inflate(input: Buffer, maxOutputLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Z_SYNC_FLUSH: a stream that stops exactly when the cluster is full is
    // complete for qemu, even without its final block marker.
    inflateRaw(input, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength }, (err, out) =>
      err ? reject(err) : resolve(out),
    );
  });
}

const FULL = Symbol('cluster full');

/**
 * zstd frames (qemu may write more than one) until the cluster is full; what
 * follows is the sector padding or the next cluster, never decoded. Output is
 * taken block by block (at most 128 KiB each), so a hostile frame cannot make
 * us allocate more than one cluster and one block.
 */
function unzstd(input: Buffer, clusterSize: number): Buffer {
  const out = Buffer.alloc(clusterSize);
  let filled = 0;
  let overflow = false;
  const d = new Decompress((chunk) => {
    const n = Math.min(chunk.length, clusterSize - filled);
    out.set(chunk.subarray(0, n), filled);
    filled += n;
    if (n < chunk.length) overflow = true;
    if (filled === clusterSize) throw FULL;
  });
  try {
    d.push(input, true);
  } catch (err) {
    if (err !== FULL) throw err;
  }
  if (overflow || filled !== clusterSize) throw new Error(`zstd data decodes to ${overflow ? 'more' : filled} bytes`);
  return out;
}

/**
 * Decompresses one compressed cluster (zlib raw deflate, or zstd). The
 * descriptor's sector count may reach a little past the end of the file when
 * the cluster is the last thing in it; qemu reads that tail as zeros, so we
 * read what exists.
 */
export async function readCompressedCluster(
  file: StoreFile,
  host: number,
  compressedSize: number,
  clusterSize: number,
  compression: 'zlib' | 'zstd' = 'zlib',
): Promise<Buffer> {
  const available = Math.min(compressedSize, file.size - host);
  const input = await file.read(host, available);
  let out: Buffer;
  try {
    out = compression === 'zstd' ? unzstd(input, clusterSize) : await inflate(input, clusterSize);
  } catch (err) {
    throw StrataError.corrupt(`qcow2 ${file.label}: ${compression}-compressed cluster at file offset ${host} does not decompress`, {
      cause: err,
    });
  }
  if (out.length !== clusterSize) {
    throw StrataError.corrupt(`qcow2 ${file.label}: compressed cluster at file offset ${host} inflates to ${out.length} bytes, not ${clusterSize}`,
    );
  }
  return out;
}
