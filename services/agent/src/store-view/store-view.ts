import type { ExtentMap, StoreIdentity } from '@strata/client';
import { Errno, StrataError, errorMessage, isStrataError } from '@strata/errors';
import type { LayerRef } from '@strata/layers';
import { BeneathRoot } from './beneath';
import { sameFile, StoreFiles } from './store-files';
import { LayerReader } from './layer-reader';

/** What a store view asks the resolvers (a StrataClient has both). */
export interface StoreViewClient {
  storeIdentity(): Promise<StoreIdentity>;
  extentMap(ref: LayerRef, path: Buffer, offset: number, length: number): Promise<ExtentMap>;
}

/** Bytes read straight from the store, bytes left to the resolver, maps asked, refusals; read by the metrics. */
export interface StoreViewCounters {
  directBytes: number;
  resolverBytes: number;
  maps: number;
  refusals: number;
}

export interface StoreViewOptions {
  /** Told of each refusal (a store file not the one mapped, a symlink on its path), once per file. */
  warn?: (event: Record<string, unknown>, message: string) => void;
  /** Store files held open at once. */
  maxOpenFiles?: number;
}

/** Where the marker file is, relative to the store root (the resolver's store-identity.ts writes it). */
const MARKER = '.strata/store-id';

/**
 * An agent's own view of the image store (`--store-view DIR`): sealed
 * layers' file bytes read straight from the store files the resolver's
 * extent maps name, on the thread pool, instead of through a Session read.
 *
 * Verified at open, not trusted: DIR must hold the store id the resolver
 * reports, in a marker file with the inode number the resolver sees (a copy
 * of the store, or another store, fails). Every store file is opened
 * beneath DIR without following a symlink and checked against the identity
 * in the map before it is read; anything that fails a check is read through
 * the resolver instead. Grants are the resolver's: a map is only given to
 * an agent whose read of the path would be allowed.
 */
export class StoreView {
  readonly counters: StoreViewCounters = { directBytes: 0, resolverBytes: 0, maps: 0, refusals: 0 };
  private readonly files: StoreFiles;

  private constructor(
    readonly dir: string,
    readonly storeId: string,
    /** The store is seen on the same mount as the resolver's: device numbers compare. */
    readonly devComparable: boolean,
    private readonly root: BeneathRoot,
    readonly client: StoreViewClient,
    readonly options: StoreViewOptions,
  ) {
    this.files = new StoreFiles(root, devComparable, options.maxOpenFiles);
  }

  /** Opens DIR and checks it is the store the resolvers serve; refuses (FAILED_PRECONDITION) otherwise. */
  static async open(dir: string, client: StoreViewClient, options: StoreViewOptions = {}): Promise<StoreView> {
    const root = await BeneathRoot.open(dir);
    try {
      const expected = await client.storeIdentity();
      let marker;
      try {
        marker = await root.openFile(MARKER);
      } catch (err) {
        throw StrataError.precondition(`--store-view ${dir} is not the image store the resolver serves: ${MARKER} cannot be opened (${errorMessage(err)})`, Errno.ENOENT);
      }
      let text: string;
      try {
        const buf = Buffer.alloc(64);
        const { bytesRead } = await marker.fh.read(buf, 0, buf.length, 0);
        text = buf.subarray(0, bytesRead).toString('latin1').trim();
      } finally {
        await marker.fh.close();
      }
      if (text !== expected.storeId) {
        throw StrataError.precondition(`--store-view ${dir} is not the image store the resolver serves: its id is ${JSON.stringify(text.slice(0, 40))}, the resolver's ${expected.storeId}`, Errno.ESTALE);
      }
      // The same id in a file with another inode number: a copy of the store (or a restored backup), whose files would be checked in vain.
      if (marker.st.ino !== BigInt(expected.marker.ino)) {
        throw StrataError.precondition(`--store-view ${dir} holds a copy of the store the resolver serves, not the store itself (${MARKER} is inode ${marker.st.ino} here, ${expected.marker.ino} there)`, Errno.ESTALE);
      }
      const devComparable = sameFile(marker.st, expected.marker, true);
      return new StoreView(dir, expected.storeId, devComparable, root, client, options);
    } catch (err) {
      await root.close();
      throw isStrataError(err) ? err : StrataError.from(err, `store view ${dir}`);
    }
  }

  /** One mount's reader of a layer: its maps are kept with it and dropped with it. */
  reader(layer: LayerRef): LayerReader {
    return new LayerReader(this, this.files, layer);
  }

  async close(): Promise<void> {
    await this.files.close();
    await this.root.close();
  }
}
