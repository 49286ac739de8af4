import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LRUCache } from 'lru-cache';
import { Errno, StrataError, isStrataError } from '@strata/errors';
import { type Catalog, type Layer, isImageScheme, isSealed, parseSource, resolveImageFile } from '@strata/layers';
import type { Logger } from '@strata/telemetry';
import { DirSource, FdCache, GuestSource, LiveImageSource, openImageLayer, planImageLayer, type ImageSource, type ImageSourceOptions, type LayerSource } from '@strata/traversal';

/** What identifies a file's content cheaply: it is replaced (new inode), truncated, or written (mtime). */
export interface FileStamp {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export function sameFile(a: FileStamp, b: FileStamp): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** A file's stamp, undefined when it is gone. */
export async function stampOf(file: string): Promise<FileStamp | undefined> {
  try {
    const st = await fsp.stat(file);
    return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export function layerText(layer: Layer): string {
  return `layer ${layer.layerId}${layer.name ? ` (${layer.name})` : ''}`;
}

/** A file as the operator knows it: relative to the store when inside it. */
export function storeRelative(storeRoot: string, file: string): string {
  const rel = path.relative(storeRoot, file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

/**
 * The one answer for a sealed layer whose image file is gone, the same on
 * a replica that still holds the file open and on one that just started:
 * ESTALE, naming the file.
 */
export function sourceMissing(layer: Layer, file: string): StrataError {
  return StrataError.precondition(`${layerText(layer)}: its image file ${file} is missing (deleted or moved after the layer was made): put it back, or update or delete the layer`, Errno.ESTALE);
}

/** How long a dropped source stays open for the requests that still use it. */
const RETIRE_AFTER_MS = 10_000;

/** A source with the stamps of its files (sealed images), taken when it was opened. */
interface Stamped {
  source: LayerSource;
  files: { file: string; stamp: FileStamp }[];
}

/** The files an image source reads: its backing chain when the reader says, else the layer's own image file. */
export function imageFilesOf(storeRoot: string, layer: Layer, source: LayerSource): string[] {
  const files = (source as Partial<Pick<ImageSource, 'files'>>).files;
  if (Array.isArray(files) && files.length > 0) return files;
  return [resolveImageFile(storeRoot, layer.source)];
}

/**
 * The layer sources of the catalog's layers, shared by every chain that
 * contains them: a snapshot and its base read the base through one source,
 * so caches inside a source (open files, parsed image tables) are not
 * duplicated per chain. Keyed by id and generation: an update makes a new
 * source, and the old one is closed when it falls out.
 */
export class LayerSources {
  /** One bound on open files for every `dir:` layer of the store. */
  private readonly fds = new FdCache(1024);
  private readonly sources = new LRUCache<string, Promise<Stamped>>({
    max: 1024,
    // A source dropped because its file changed may still serve a request in flight: closed a little later.
    dispose: (opened, _key, reason) => {
      const close = (): void => void opened.then((o) => o.source.close()).catch(() => undefined);
      if (reason === 'delete') setTimeout(close, RETIRE_AFTER_MS).unref();
      else close();
    },
  });
  /** What was last said of a layer's files, so that a problem is logged once, not at every view. */
  private readonly reported = new LRUCache<string, string>({ max: 4096 });

  constructor(
    private readonly catalog: Catalog,
    private readonly storeRealRoot: Buffer,
    private readonly log?: Logger,
  ) {}

  /**
   * A layer's source (`image`: its source is a disk image); `overlayRules`
   * for an image under `dir:` overlays (dir: layers always follow them).
   * Called whenever a chain view is made. A running VM's image is looked at
   * again (file stamps, journal head); a sealed image's files are stat'ed
   * against their stamps at open: a file gone is refused as it is on a
   * replica that never opened it (sourceMissing), a file replaced or
   * rewritten is opened again as such a replica would, both logged at warn.
   */
  async sourceOf(layer: Layer, image: boolean, overlayRules: boolean): Promise<LayerSource> {
    const key = `${layer.layerId}@${layer.generation}${image && overlayRules ? '+o' : ''}`;
    const known = this.sources.get(key);
    if (known) {
      if (!image) return (await known).source;
      if (!isSealed(layer)) return refreshed((await known).source);
      const opened = await known;
      if (await this.unchanged(layer, opened)) return opened.source;
      // Replaced or rewritten: dropped (closed) and opened again, below.
      if (this.sources.get(key) === known) this.sources.delete(key);
    }
    const opening = image ? this.openImage(layer, overlayRules) : Promise.resolve({ source: this.openDir(layer), files: [] });
    this.sources.set(key, opening);
    // A failed open is not remembered: the next request tries again (the image may have been fixed).
    opening.catch(() => {
      if (this.sources.get(key) === opening) this.sources.delete(key);
    });
    return (await opening).source;
  }

  /** Whether a sealed image's files are still the ones opened; throws sourceMissing for one that is gone. */
  private async unchanged(layer: Layer, opened: Stamped): Promise<boolean> {
    const now = await Promise.all(opened.files.map((f) => stampOf(f.file)));
    const gone = opened.files.findIndex((_, i) => now[i] === undefined);
    if (gone >= 0) {
      const file = storeRelative(this.catalog.storeRoot, opened.files[gone].file);
      this.report(layer, 'layer.source_missing', file, `${layerText(layer)}: image file ${file} is missing; refusing its chain on this replica as every replica does`);
      throw sourceMissing(layer, file);
    }
    const changed = opened.files.findIndex((f, i) => !sameFile(f.stamp, now[i]!));
    if (changed < 0) return true;
    const f = opened.files[changed];
    const file = storeRelative(this.catalog.storeRoot, f.file);
    this.report(layer, 'layer.source_changed', file, `${layerText(layer)} is sealed, but its image file ${file} was replaced or written since it was opened; serving it as it is now, as a replica that opens it afresh would`, {
      before: f.stamp,
      after: now[changed],
    });
    return false;
  }

  private async openImage(layer: Layer, overlayRules: boolean): Promise<Stamped> {
    let source: ImageSource | GuestSource | LiveImageSource;
    try {
      source = await openImageSource(this.catalog.storeRoot, layer, overlayRules);
    } catch (err) {
      const missing = missingFileOf(this.catalog.storeRoot, layer, err);
      if (missing !== undefined && isSealed(layer)) {
        this.report(layer, 'layer.source_missing', missing, `${layerText(layer)}: image file ${missing} is missing`);
        throw sourceMissing(layer, missing);
      }
      throw err;
    }
    if (source instanceof LiveImageSource || !isSealed(layer)) return { source, files: [] };
    const files = await Promise.all(imageFilesOf(this.catalog.storeRoot, layer, source).map(async (file) => ({ file, stamp: await stampOf(file) })));
    this.reported.delete(String(layer.layerId));
    return { source, files: files.flatMap((f) => (f.stamp ? [{ file: f.file, stamp: f.stamp }] : [])) };
  }

  /** The stamps of a sealed image's files as this replica opened them (for `layer check`), if it has. */
  async openedStamps(layer: Layer): Promise<Map<string, FileStamp>> {
    const out = new Map<string, FileStamp>();
    for (const key of [`${layer.layerId}@${layer.generation}`, `${layer.layerId}@${layer.generation}+o`]) {
      const opened = await this.sources.peek(key)?.catch(() => undefined);
      for (const f of opened?.files ?? []) out.set(f.file, f.stamp);
    }
    return out;
  }

  /** Logged at warn once per layer and problem (a file, a kind), again only after it changed. */
  private report(layer: Layer, event: 'layer.source_missing' | 'layer.source_changed', file: string, message: string, extra: Record<string, unknown> = {}): void {
    const what = `${event}:${file}:${JSON.stringify(extra.after ?? '')}`;
    if (this.reported.get(String(layer.layerId)) === what) return;
    this.reported.set(String(layer.layerId), what);
    this.log?.warn({ event, layerId: layer.layerId, name: layer.name, source: layer.source, file, ...extra }, message);
  }

  close(): void {
    this.sources.clear();
    this.fds.clear();
  }

  private openDir(layer: Layer): LayerSource {
    return new DirSource(this.catalog.layerRoot(layer), {
      storeRoot: this.storeRealRoot,
      ...(isSealed(layer) ? { fdCache: this.fds } : { live: true }),
    });
  }

}

/** The file an image open failed on for being absent (the layer's own image, or a backing file it names), else undefined. */
function missingFileOf(storeRoot: string, layer: Layer, err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  const absent = (isStrataError(err) && err.errno === Errno.ENOENT) || code === 'ENOENT';
  if (!absent) return undefined;
  const top = parseSource(layer.source).relative;
  try {
    resolveImageFile(storeRoot, layer.source);
  } catch {
    return top;
  }
  // A backing file: the path as the error names it, relative to the store when inside it.
  const named = /(\/[^\s:'"]+)/.exec((err as Error).message)?.[1];
  return named ? storeRelative(storeRoot, named) : `a backing file of ${top}`;
}

async function refreshed(source: LayerSource): Promise<LayerSource> {
  if (source instanceof LiveImageSource) await source.refresh();
  return source;
}

export function imageOptions(storeRoot: string, layer: Layer, overlayRules: boolean): ImageSourceOptions {
  const parsed = parseSource(layer.source);
  if (!isImageScheme(parsed.scheme)) throw StrataError.invalid(`source ${layer.source} is not a disk image`);
  // Confinement of the image itself, checked again at every open (the store may have changed).
  resolveImageFile(storeRoot, layer.source);
  return {
    storeRoot,
    image: parsed.relative,
    format: parsed.scheme,
    partition: parsed.partition,
    ...(parsed.logicalVolume ? { logicalVolume: parsed.logicalVolume } : {}),
    ...(parsed.snapshot === undefined ? {} : { snapshot: parsed.snapshot }),
    filesystemPath: layer.filesystemPath,
    overlayRules,
  };
}

/** A sealed image is read as it is, cached forever; a LIVE one is the disk of a running VM, re-checked as it is written. */
export async function openImageSource(storeRoot: string, layer: Layer, overlayRules: boolean): Promise<ImageSource | GuestSource | LiveImageSource> {
  const options = imageOptions(storeRoot, layer, overlayRules);
  if (isSealed(layer)) return openImageLayer(options);
  // A running VM's disk is followed one filesystem at a time: the guest's root when it has one.
  const plan = await planImageLayer(options);
  return LiveImageSource.open(plan.kind === 'volume' ? plan.options : { ...options, partition: plan.mounts[0].volume.partition, ...(plan.mounts[0].volume.logicalVolume ? { logicalVolume: plan.mounts[0].volume.logicalVolume } : {}), filesystemPath: plan.mounts[0].filesystemPath });
}

/**
 * What only a source reader can check before a layer is written: an image
 * opens (format by magic, partition, filesystem, the root path inside it,
 * a backing chain confined to the store), and a qcow2 snapshot's backing
 * file is the image of its base layer.
 */
export async function checkLayerSource(storeRoot: string, chain: readonly Layer[]): Promise<void> {
  const [layer, base] = chain;
  if (!isImageScheme(parseSource(layer.source).scheme)) return;
  const source = await openImageLayer(imageOptions(storeRoot, layer, false));
  try {
    // A filesystem whose root directory cannot be listed would serve nothing: refuse it now, not at the first read.
    await source.list(await source.root());
    const backing = source.backingFile;
    const baseImage = base && isImageScheme(parseSource(base.source).scheme) ? resolveImageFile(storeRoot, base.source) : undefined;
    if (backing !== undefined) {
      if (!base) throw StrataError.invalid(`${layer.source} is a snapshot of another image (its backing file); create it with --base <the layer of that image>`);
      if (backing !== baseImage) {
        throw StrataError.invalid(`${layer.source} has backing file ${backing}, but its base layer ${base.layerId} reads ${baseImage ?? base.source}; the base of an image snapshot is the layer of its backing file`);
      }
    } else if (baseImage !== undefined && (layer.layerType === 'snapshot' || layer.layerType === 'incremental')) {
      throw StrataError.invalid(`${layer.source} has no backing file, so it cannot be ${layer.layerType === 'snapshot' ? 'a snapshot' : 'an incremental snapshot'} of layer ${base.layerId}`);
    }
  } finally {
    await source.close();
  }
}
