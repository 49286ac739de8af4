import { constants, inflateRaw } from 'node:zlib';
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

/**
 * Inflates one compressed cluster (zlib raw deflate). The descriptor's sector
 * count may reach a little past the end of the file when the cluster is the
 * last thing in it; qemu reads that tail as zeros, so we read what exists.
 */
export async function readCompressedCluster(
  file: StoreFile,
  host: number,
  compressedSize: number,
  clusterSize: number,
): Promise<Buffer> {
  const available = Math.min(compressedSize, file.size - host);
  const input = await file.read(host, available);
  let out: Buffer;
  try {
    out = await inflate(input, clusterSize);
  } catch (err) {
    throw StrataError.corrupt(`qcow2 ${file.label}: compressed cluster at file offset ${host} does not inflate`, {
      cause: err,
    });
  }
  if (out.length !== clusterSize) {
    throw StrataError.corrupt(`qcow2 ${file.label}: compressed cluster at file offset ${host} inflates to ${out.length} bytes, not ${clusterSize}`,
    );
  }
  return out;
}
