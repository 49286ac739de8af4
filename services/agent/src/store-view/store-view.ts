import type { ExtentMap, StoreIdentity } from '@strata/client';
import { Errno, StrataError, errorMessage, isStrataError } from '@strata/errors';
import type { LayerRef } from '@strata/layers';
import { BeneathRoot } from './beneath';
import { sameFile, StoreFiles } from './store-files';
import { LayerReader } from './layer-reader';
import { LRUCache } from 'lru-cache';

/** What a store view asks the resolvers (a StrataClient has both). */
export interface StoreViewClient {
  storeIdentity(): Promise<StoreIdentity>;
  /**
   * `siblings`: also the maps of up to that many other small files of the directory (ExtentMap.siblings); a client without it answers none.
   * `beyondDirectory`: they may also be files of the directories after it (a walk of the tree); without it a sibling elsewhere is refused.
   */
  extentMap(ref: LayerRef, path: Buffer, offset: number, length: number, siblings?: number, beyondDirectory?: boolean): Promise<ExtentMap>;
}

/** Bytes read straight from the store, bytes left to the resolver, maps asked (and sibling maps kept from their answers), refusals; read by the metrics. */
export interface StoreViewCounters {
  directBytes: number;
  resolverBytes: number;
  maps: number;
  siblingMaps: number;
  refusals: number;
}

export interface StoreViewOptions {
  /** Told of each refusal (a store file not the one mapped, a symlink on its path), once per file. */
  warn?: (event: Record<string, unknown>, message: string) => void;
  /** Store files held open at once. */
  maxOpenFiles?: number;
}

/** Layers whose readers (and maps) are kept at once. */
const MAX_LAYERS = 32;

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
  readonly counters: StoreViewCounters = { directBytes: 0, resolverBytes: 0, maps: 0, siblingMaps: 0, refusals: 0 };
  private readonly files: StoreFiles;
  /** One reader per layer, shared by every mount and file of it: one map cache, one in-flight ask per file or directory. */
  private readonly readers = new LRUCache<string, LayerReader>({ max: MAX_LAYERS });

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

  /** The reader of a layer, shared by every asker (its maps are kept for MAP_TTL_MS at most, whoever asked). */
  reader(layer: LayerRef): LayerReader {
    const k = JSON.stringify(layer);
    let r = this.readers.get(k);
    if (!r) {
      r = new LayerReader(this, this.files, layer);
      this.readers.set(k, r);
    }
    return r;
  }

  /** Opens of directories and files beneath the store root so far. */
  get opens(): number {
    return this.root.opens;
  }

  async close(): Promise<void> {
    await this.files.close();
    await this.root.close();
  }
}
