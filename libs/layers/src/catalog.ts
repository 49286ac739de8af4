import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Errno, GrpcCode, StrataError, isStrataError } from '@strata/errors';
import { writeFileAtomic } from '@strata/posix';
import {
  Layer,
  LayerRef,
  LayerType,
  MAX_CHAIN_DEPTH,
  MountOption,
  formatLayerRef,
  normaliseMountOptions,
} from './model';
import { parseLayerRecord, serialiseLayerRecord } from './record-file';
import { withCatalogLock } from './catalog-lock';
import { catalogDir } from './store-layout';
import { CATALOG_FRESHNESS } from './live-freshness';
import { checkSourceInStore, normaliseFilesystemPath, resolveLayerRoot, validateName } from './validate';

export interface CreateLayerInput {
  source: string;
  filesystemPath?: string;
  base?: LayerRef;
  layerType: LayerType;
  name?: string;
  mountOptions?: MountOption[];
}

export interface UpdateLayerInput {
  /** When set, the update fails unless the layer still has this generation. */
  expectedGeneration?: number;
  name?: string;
  source?: string;
  filesystemPath?: string;
  mountOptions?: MountOption[];
  base?: LayerRef;
  layerType?: LayerType;
}

/**
 * Checks beyond the catalog's own (an image's format, partition and
 * filesystem; its backing file against the base layer), made by whoever can
 * open the source before a layer is written. `chain` is the new layer's
 * chain, the layer itself first.
 */
export type SourceCheck = (chain: readonly Layer[]) => Promise<void>;

export interface CatalogOptions {
  /** How stale the in-memory view may get before it is re-read (changes by other processes show within this). */
  refreshMs?: number;
  now?: () => number;
  checkSource?: SourceCheck;
  /**
   * Called holding the writer lock before any change: throws to refuse it
   * (a resolver that does not know its callers, on an enforced store).
   */
  writeGuard?: () => Promise<void>;
}

interface Entry {
  mtimeMs: number;
  size: number;
  result: Layer | StrataError;
}

export interface LayerListing {
  layers: Layer[];
  /** Catalog files that could not be read, each naming its file and field. */
  problems: StrataError[];
}

function notFound(ref: LayerRef): StrataError {
  return new StrataError(Errno.ENOENT, `${formatLayerRef(ref)} does not exist`, { code: GrpcCode.NOT_FOUND });
}

/** Whether two records of one layer define the same layer (everything an update can change). */
function sameDefinition(a: Layer, b: Layer): boolean {
  return (
    a.name === b.name &&
    a.source === b.source &&
    a.filesystemPath === b.filesystemPath &&
    a.layerType === b.layerType &&
    a.baseLayerId === b.baseLayerId &&
    a.mountOptions.length === b.mountOptions.length &&
    a.mountOptions.every((o, i) => o === b.mountOptions[i])
  );
}

/**
 * The layer catalog: one JSON file per layer under <store>/.strata/catalog.
 * Readers never lock (files are replaced by rename, so a reader sees the old
 * or the new file, never half of one). Writers take a lock directory that
 * works across processes and hosts sharing the store (mkdir is atomic on NFS
 * too), re-read the catalog under it, and only then decide: two resolvers
 * creating at once get different ids, and an update with a stale generation
 * is refused instead of overwriting.
 */
export class Catalog {
  readonly storeRoot: string;
  private readonly dir: string;
  private readonly layersDir: string;
  private readonly refreshMs: number;
  private readonly checkSource: SourceCheck | undefined;
  private readonly writeGuard: (() => Promise<void>) | undefined;
  private readonly now: () => number;
  private entries = new Map<number, Entry>();
  private loadedAt = -Infinity;
  private loading: Promise<void> | undefined;
  /** Loads started so far, the one in flight, the last one finished: to tell whether a load began after a request arrived. */
  private loadsStarted = 0;
  private loadingNumber = 0;
  private loadedNumber = 0;

  constructor(storeRoot: string, options: CatalogOptions = {}) {
    this.storeRoot = path.resolve(storeRoot);
    this.dir = catalogDir(this.storeRoot);
    this.layersDir = path.join(this.dir, 'layers');
    this.refreshMs = options.refreshMs ?? CATALOG_FRESHNESS.refreshMs;
    this.checkSource = options.checkSource;
    this.writeGuard = options.writeGuard;
    this.now = options.now ?? Date.now;
  }

  /** Creates the catalog folders if the store has none yet. */
  async init(): Promise<void> {
    const st = await fs.stat(this.storeRoot).catch(() => undefined);
    if (!st?.isDirectory()) {
      throw new StrataError(Errno.ENOENT, `image store ${this.storeRoot} is not a directory`, {
        code: GrpcCode.FAILED_PRECONDITION,
      });
    }
    await fs.mkdir(this.layersDir, { recursive: true });
  }

  async list(): Promise<LayerListing> {
    await this.refresh(false);
    const layers: Layer[] = [];
    const problems: StrataError[] = [];
    for (const e of this.entries.values()) {
      if (isStrataError(e.result)) problems.push(e.result);
      else layers.push(e.result);
    }
    layers.sort((a, b) => a.layerId - b.layerId);
    return { layers, problems };
  }

  async get(ref: LayerRef): Promise<Layer> {
    return this.answer(() => this.lookup(ref));
  }

  /** The chain from this layer down to its base image, this layer first. */
  async chain(ref: LayerRef): Promise<Layer[]> {
    return this.answer(() => this.chainOf(this.lookup(ref)));
  }

  /**
   * An answer from the view, except that a miss (ENOENT) is only said after
   * a read of the catalog that began after the request arrived: a layer
   * created or renamed through another replica is found by the next request
   * that names it (read-your-writes across replicas), not after the next
   * periodic refresh. Concurrent misses share one read.
   */
  private async answer<T>(fn: () => T): Promise<T> {
    const arrivedAfter = this.loadsStarted;
    await this.refresh(false);
    try {
      return fn();
    } catch (err) {
      if (!isStrataError(err) || err.errno !== Errno.ENOENT) throw err;
      if (this.loadedNumber > arrivedAfter) throw err;
      if (this.loading && this.loadingNumber > arrivedAfter) await this.loading;
      else await this.refresh(true);
      return fn();
    }
  }

  /** Where a layer's data is on disk, proven to stay inside the store. */
  layerRoot(layer: Layer): string {
    return resolveLayerRoot(this.storeRoot, layer.source, layer.filesystemPath);
  }

  async create(input: CreateLayerInput): Promise<Layer> {
    const name = input.name ?? '';
    validateName(name);
    const filesystemPath = normaliseFilesystemPath(input.filesystemPath ?? '/');
    checkSourceInStore(this.storeRoot, input.source, filesystemPath);
    return this.locked(async () => {
      const base = this.resolveBase(input.layerType, input.base);
      this.checkNameFree(name, 0);
      const layerId = await this.allocateId();
      const t = this.now();
      const layer: Layer = {
        layerId,
        baseLayerId: base?.layerId ?? 0,
        name,
        source: input.source,
        filesystemPath,
        layerType: input.layerType,
        mountOptions: normaliseMountOptions(input.mountOptions ?? []),
        generation: 1,
        createTimeMs: t,
        updateTimeMs: t,
      };
      if (base) this.checkDepth(layer);
      await this.checkSource?.([layer, ...(base ? this.chainOf(base) : [])]);
      await this.write(layer);
      return layer;
    });
  }

  async update(ref: LayerRef, input: UpdateLayerInput): Promise<Layer> {
    if (input.name !== undefined) validateName(input.name);
    return this.locked(async () => {
      const current = this.lookup(ref);
      this.checkGeneration(current, input.expectedGeneration);
      const layerType = input.layerType ?? current.layerType;
      let baseLayerId = current.baseLayerId;
      if (input.base !== undefined || input.layerType !== undefined) {
        const base = this.resolveBase(layerType, input.base ?? (baseLayerId ? { id: baseLayerId } : undefined));
        baseLayerId = base?.layerId ?? 0;
      }
      const wanted: Layer = {
        ...current,
        name: input.name ?? current.name,
        source: input.source ?? current.source,
        filesystemPath: normaliseFilesystemPath(input.filesystemPath ?? current.filesystemPath),
        layerType,
        baseLayerId,
        mountOptions: input.mountOptions ? normaliseMountOptions(input.mountOptions) : current.mountOptions,
      };
      // Nothing to change (no fields, or the values it has): the layer as it is. A new generation
      // would tell every cache and every --expect-generation holder that it changed when it did not.
      if (sameDefinition(current, wanted)) return current;
      const next: Layer = { ...wanted, generation: current.generation + 1, updateTimeMs: this.now() };
      this.checkNameFree(next.name, next.layerId);
      if (next.source !== current.source || next.filesystemPath !== current.filesystemPath) {
        checkSourceInStore(this.storeRoot, next.source, next.filesystemPath);
      }
      if (baseLayerId !== 0) this.checkDepth(next);
      if (next.source !== current.source || next.filesystemPath !== current.filesystemPath || next.baseLayerId !== current.baseLayerId) {
        await this.checkSource?.([next, ...(next.baseLayerId ? this.chainOf(this.lookup({ id: next.baseLayerId })) : [])]);
      }
      await this.write(next);
      return next;
    });
  }

  async delete(ref: LayerRef, expectedGeneration?: number): Promise<void> {
    await this.locked(async () => {
      const layer = this.lookup(ref);
      this.checkGeneration(layer, expectedGeneration);
      const children = [...this.entries.values()]
        .map((e) => e.result)
        .filter((l): l is Layer => !isStrataError(l) && l.baseLayerId === layer.layerId);
      if (children.length > 0) {
        throw new StrataError(
          Errno.EBUSY,
          `layer ${layer.layerId} is the base of layer${children.length > 1 ? 's' : ''} ${children
            .map((c) => c.layerId)
            .join(', ')}; delete those first`,
          { code: GrpcCode.FAILED_PRECONDITION },
        );
      }
      await fs.rm(this.fileOf(layer.layerId), { force: true });
      this.entries.delete(layer.layerId);
    });
  }

  private lookup(ref: LayerRef): Layer {
    let entry: Entry | undefined;
    if ('id' in ref) {
      entry = this.entries.get(ref.id);
    } else {
      if (ref.name === '') throw StrataError.invalid('empty layer name');
      for (const e of this.entries.values()) {
        if (!isStrataError(e.result) && e.result.name === ref.name) entry = e;
      }
    }
    if (!entry) throw notFound(ref);
    if (isStrataError(entry.result)) throw entry.result;
    return entry.result;
  }

  private chainOf(top: Layer): Layer[] {
    const chain: Layer[] = [top];
    const seen = new Set<number>([top.layerId]);
    let cur = top;
    while (cur.baseLayerId !== 0) {
      if (seen.has(cur.baseLayerId)) {
        throw new StrataError(Errno.ELOOP, `layer ${top.layerId}: base chain has a cycle through layer ${cur.baseLayerId}`, {
          code: GrpcCode.FAILED_PRECONDITION,
        });
      }
      const base = this.entries.get(cur.baseLayerId);
      if (!base) {
        throw new StrataError(Errno.ENOENT, `layer ${cur.layerId}: base layer ${cur.baseLayerId} does not exist`, {
          code: GrpcCode.FAILED_PRECONDITION,
        });
      }
      if (isStrataError(base.result)) throw base.result;
      cur = base.result;
      seen.add(cur.layerId);
      chain.push(cur);
      if (chain.length > MAX_CHAIN_DEPTH) {
        throw new StrataError(Errno.ELOOP, `layer ${top.layerId}: chain is deeper than ${MAX_CHAIN_DEPTH} layers`, {
          code: GrpcCode.FAILED_PRECONDITION,
        });
      }
    }
    return chain;
  }

  private resolveBase(layerType: LayerType, base: LayerRef | undefined): Layer | undefined {
    if (layerType === 'base') {
      if (base !== undefined && !('id' in base && base.id === 0)) {
        throw StrataError.invalid('a base image has no base layer');
      }
      return undefined;
    }
    if (base === undefined || ('id' in base && base.id === 0)) {
      throw StrataError.invalid(`a layer of type ${layerType} needs a base layer`);
    }
    try {
      return this.lookup(base);
    } catch (err) {
      if (isStrataError(err) && err.errno === Errno.ENOENT) {
        throw new StrataError(Errno.ENOENT, `base ${formatLayerRef(base)} does not exist`, {
          code: GrpcCode.FAILED_PRECONDITION,
        });
      }
      throw err;
    }
  }

  /** Validates the chain the layer would have (cycles, depth) before it is written. */
  private checkDepth(layer: Layer): void {
    const saved = this.entries.get(layer.layerId);
    this.entries.set(layer.layerId, { mtimeMs: 0, size: 0, result: layer });
    try {
      this.chainOf(layer);
    } catch (err) {
      if (isStrataError(err)) throw StrataError.invalid(err.message);
      throw err;
    } finally {
      if (saved) this.entries.set(layer.layerId, saved);
      else this.entries.delete(layer.layerId);
    }
  }

  private checkNameFree(name: string, self: number): void {
    if (name === '') return;
    for (const e of this.entries.values()) {
      if (!isStrataError(e.result) && e.result.name === name && e.result.layerId !== self) {
        throw new StrataError(Errno.EEXIST, `layer name "${name}" is taken by layer ${e.result.layerId}`, {
          code: GrpcCode.ALREADY_EXISTS,
        });
      }
    }
  }

  private checkGeneration(layer: Layer, expected: number | undefined): void {
    if (expected !== undefined && expected !== 0 && expected !== layer.generation) {
      throw new StrataError(
        Errno.EBUSY,
        `layer ${layer.layerId} is at generation ${layer.generation}, not ${expected}: it changed since you read it`,
        { code: GrpcCode.FAILED_PRECONDITION },
      );
    }
  }

  private fileOf(id: number): string {
    return path.join(this.layersDir, `${id}.json`);
  }

  private async allocateId(): Promise<number> {
    const counterFile = path.join(this.dir, 'next-id');
    const text = await fs.readFile(counterFile, 'utf8').catch(() => '1');
    const fromCounter = Number.parseInt(text, 10);
    const fromFiles = Math.max(0, ...this.entries.keys()) + 1;
    const id = Math.max(Number.isSafeInteger(fromCounter) ? fromCounter : 1, fromFiles);
    // The counter only grows, so a deleted layer's id is never handed out again.
    await writeFileAtomic(counterFile, `${id + 1}\n`);
    return id;
  }

  private async write(layer: Layer): Promise<void> {
    await writeFileAtomic(this.fileOf(layer.layerId), serialiseLayerRecord(layer));
    this.entries.set(layer.layerId, { mtimeMs: -1, size: -1, result: layer });
  }

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    await fs.mkdir(this.layersDir, { recursive: true });
    return withCatalogLock(this.dir, async () => {
      await this.writeGuard?.();
      await this.refresh(true);
      return fn();
    });
  }

  /** Re-reads catalog files that changed since the last look (by mtime and size). */
  private async refresh(force: boolean): Promise<void> {
    if (!force && this.now() - this.loadedAt < this.refreshMs) return;
    if (this.loading && !force) return this.loading;
    const run = this.reload();
    this.loading = run;
    try {
      await run;
    } finally {
      if (this.loading === run) this.loading = undefined;
    }
  }

  private async reload(): Promise<void> {
    const startedAt = this.now();
    const number = ++this.loadsStarted;
    this.loadingNumber = number;
    let names: string[];
    try {
      names = await fs.readdir(this.layersDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') names = [];
      else throw err;
    }
    const next = new Map<number, Entry>();
    await Promise.all(
      names.map(async (fileName) => {
        const m = /^([0-9]+)\.json$/.exec(fileName);
        if (!m) return;
        const id = Number(m[1]);
        const file = path.join(this.layersDir, fileName);
        const st = await fs.stat(file).catch(() => undefined);
        if (!st) return;
        const old = this.entries.get(id);
        if (old && old.mtimeMs === st.mtimeMs && old.size === st.size) {
          next.set(id, old);
          return;
        }
        let result: Layer | StrataError;
        try {
          result = parseLayerRecord(await fs.readFile(file, 'utf8'), file);
          if (result.layerId !== id) {
            throw new StrataError(Errno.EIO, `catalog file ${file}: field "layerId" is ${result.layerId}, the file name says ${id}`, {
              code: GrpcCode.DATA_LOSS,
            });
          }
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
          result = isStrataError(err) ? err : new StrataError(Errno.EIO, `catalog file ${file}: ${(err as Error).message}`);
        }
        next.set(id, { mtimeMs: st.mtimeMs, size: st.size, result });
      }),
    );
    // A forced read that began later may have finished first: its view is the newer one.
    if (number < this.loadedNumber) return;
    this.entries = next;
    this.loadedAt = startedAt;
    this.loadedNumber = number;
  }
}
