import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { Errno, GrpcCode, StrataError } from '@strata/errors';

/**
 * Runs `fn` holding the catalog's writer lock: a lock directory beside the
 * catalog files (mkdir is atomic on NFS too), so writers in every process
 * and on every host sharing the store take turns. The layer catalog and the
 * access policy share this one lock.
 */
export async function withCatalogLock<T>(catalogDir: string, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(catalogDir, { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(catalogDir, {
      lockfilePath: path.join(catalogDir, 'lock'),
      realpath: false,
      stale: 10_000,
      retries: { retries: 100, minTimeout: 10, maxTimeout: 200, randomize: true },
    });
  } catch (err) {
    throw new StrataError(Errno.EBUSY, `catalog ${catalogDir} is locked by another writer: ${(err as Error).message}`, {
      code: GrpcCode.ABORTED,
      cause: err,
    });
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}
