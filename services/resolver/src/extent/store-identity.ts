import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { CATALOG_DIR_NAME } from '@strata/layers';

/** Where the store's identity lives, relative to its root (beside the catalog, which every replica shares). */
export const STORE_ID_FILE = `${CATALOG_DIR_NAME}/store-id`;

const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A store file as lstat(2) saw it: what a reader compares with fstat(2) of the file it opened. */
export interface StoreFileId {
  /** Relative to the store root. */
  path: string;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

export interface StoreIdentity {
  storeId: string;
  marker: StoreFileId;
}

/** lstat of a store file by its store-relative path, as a StoreFileId; a non-regular file is refused. */
export async function storeFileId(storeRoot: string, rel: string): Promise<StoreFileId> {
  const st = await fs.lstat(path.join(storeRoot, rel), { bigint: true });
  if (!st.isFile()) throw StrataError.io(`store file ${rel} is not a regular file`);
  return { path: rel, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs };
}

async function readId(file: string): Promise<string | undefined> {
  let text: string;
  try {
    const fh = await fs.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(64);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      text = buf.subarray(0, bytesRead).toString('latin1').trim();
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw StrataError.from(err, 'store identity');
  }
  if (!ID_PATTERN.test(text)) throw StrataError.corrupt(`store identity ${STORE_ID_FILE} holds ${JSON.stringify(text.slice(0, 40))}, not an id`);
  return text;
}

/**
 * The image store's identity: a random id written once, by whichever
 * resolver is first asked, into the store itself. Written beside and then
 * linked into place, so replicas racing on a shared store agree on the
 * first one (link(2) does not replace, also on NFS).
 */
export class StoreIdentityFile {
  private id: Promise<string> | undefined;

  constructor(readonly storeRoot: string) {}

  /** The id and the marker file as it is now. */
  async identity(): Promise<StoreIdentity> {
    const storeId = await this.storeId();
    return { storeId, marker: await storeFileId(this.storeRoot, STORE_ID_FILE).catch((err: unknown) => Promise.reject(StrataError.from(err, 'store identity'))) };
  }

  /** The id, read (or written) once per resolver: a store's id never changes. */
  storeId(): Promise<string> {
    this.id ??= this.readOrCreate().catch((err: unknown) => {
      this.id = undefined;
      throw err;
    });
    return this.id;
  }

  private async readOrCreate(): Promise<string> {
    const file = path.join(this.storeRoot, STORE_ID_FILE);
    const known = await readId(file);
    if (known) return known;
    const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(tmp, `${randomUUID()}\n`, { flag: 'wx', mode: 0o644 });
      await fs.link(tmp, file).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      });
    } catch (err) {
      throw StrataError.precondition(`the store has no identity and the resolver cannot write ${STORE_ID_FILE}: ${StrataError.from(err).message}`, Errno.EROFS);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    const id = await readId(file);
    if (!id) throw StrataError.io(`store identity ${STORE_ID_FILE} vanished after it was written`);
    return id;
  }
}
