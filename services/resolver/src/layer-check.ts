import { promises as fsp } from 'node:fs';
import { Errno, errorMessage, isStrataError } from '@strata/errors';
import { type Catalog, type Layer, type LayerRef, isImageScheme, isSealed, parseSource, resolveImageFile } from '@strata/layers';
import { type DamageFinding, deepCheck, openImageLayer } from '@strata/traversal';
import { imageFilesOf, imageOptions, layerText, sameFile, stampOf, storeRelative, type FileStamp, type LayerSources } from './layer-sources';

export type FileState = 'ok' | 'missing' | 'unreadable' | 'changed';

export interface FileCheck {
  /** Relative to the store when inside it. */
  file: string;
  role: 'image' | 'backing file' | 'directory';
  state: FileState;
  detail: string;
}

export interface LayerCheck {
  layer: Layer;
  ok: boolean;
  files: FileCheck[];
  problems: string[];
  /** With deep: the damaged objects of the layer's tree (walk order, bounded), how many in all, and objects checked. */
  damaged: DamageFinding[];
  damagedCount: number;
  objectsChecked: number;
}

/**
 * A sealed layer's file modified this long after the layer was last written
 * counts as changed: beyond the clock differences of hosts sharing a store
 * (and the copy that preceded `layer create`).
 */
export const MODIFIED_AFTER_SEAL_MS = 2_000;

/** One step of a check; issue 24 adds a deep walk of the tree as another. */
interface CheckStep {
  run(layer: Layer, into: LayerCheck): Promise<void>;
}

/**
 * `strata layer check`: whether a layer's data is still what it was made
 * from, on this replica. Its chain resolves; every file it reads (an image
 * and its backing chain, a folder) is present, readable, not replaced since
 * this replica opened it and, for a sealed layer, not modified after the
 * layer was last written; an image's headers and filesystem open. Cheap
 * (stats, one small read per file, one open of each image); nothing is
 * walked. Findings only: it changes nothing.
 */
export class LayerChecker {
  private readonly steps: CheckStep[];

  constructor(
    private readonly catalog: Catalog,
    private readonly sources: LayerSources,
  ) {
    this.steps = [{ run: (l, into) => this.chainResolves(l, into) }, { run: (l, into) => this.filesIntact(l, into) }, { run: (l, into) => this.imageOpens(l, into) }];
  }

  async check(ref: LayerRef, options: { deep?: boolean } = {}): Promise<LayerCheck> {
    const layer = await this.catalog.get(ref);
    const result: LayerCheck = { layer, ok: true, files: [], problems: [], damaged: [], damagedCount: 0, objectsChecked: 0 };
    const steps = options.deep ? [...this.steps, { run: (l: Layer, into: LayerCheck) => this.treeReads(l, into) }] : this.steps;
    for (const step of steps) {
      try {
        await step.run(layer, result);
      } catch (err) {
        result.problems.push(errorMessage(err));
      }
    }
    result.ok = result.problems.length === 0 && result.files.every((f) => f.state === 'ok') && result.damagedCount === 0;
    return result;
  }

  private async chainResolves(layer: Layer, into: LayerCheck): Promise<void> {
    try {
      await this.catalog.chain({ id: layer.layerId });
    } catch (err) {
      into.problems.push(`its chain does not resolve: ${errorMessage(err)}`);
    }
  }

  private async filesIntact(layer: Layer, into: LayerCheck): Promise<void> {
    const store = this.catalog.storeRoot;
    if (!isImageScheme(parseSource(layer.source).scheme)) {
      const root = this.catalog.layerRoot(layer);
      into.files.push(await fileState(store, root, 'directory', layer, undefined));
      return;
    }
    let top: string;
    try {
      top = resolveImageFile(store, layer.source);
    } catch (err) {
      const missing = isStrataError(err) && err.errno === Errno.ENOENT;
      into.files.push({ file: parseSource(layer.source).relative, role: 'image', state: missing ? 'missing' : 'unreadable', detail: errorMessage(err) });
      return;
    }
    // The backing chain as the image names it (from a fresh open when this replica has none; a broken open is imageOpens' to report).
    const opened = await this.sources.openedStamps(layer);
    let files = [...opened.keys()];
    if (files.length === 0) {
      const source = await openImageLayer(imageOptions(store, layer, false)).catch(() => undefined);
      files = source ? imageFilesOf(store, layer, source) : [top];
      await source?.close();
    }
    for (const [i, file] of files.entries()) into.files.push(await fileState(store, file, i === 0 ? 'image' : 'backing file', layer, opened.get(file)));
  }

  /** Headers, partition and filesystem, as a fresh open reads them; the root listed. */
  private async imageOpens(layer: Layer, into: LayerCheck): Promise<void> {
    if (!isImageScheme(parseSource(layer.source).scheme)) return;
    if (into.files.some((f) => f.state === 'missing')) return;
    let source;
    try {
      source = await openImageLayer(imageOptions(this.catalog.storeRoot, layer, false));
      await source.list(await source.root());
    } catch (err) {
      into.problems.push(`${parseSource(layer.source).relative} does not open as ${layer.source}: ${errorMessage(err)}`);
    } finally {
      await source?.close().catch(() => undefined);
    }
  }

  /**
   * --deep (issue 24): the image layer's whole tree read through a fresh
   * source, every damaged object listed with its path, what failed and the
   * errno; the walk never stops at one. A folder layer is the host's own
   * filesystem: nothing to check beyond its files.
   */
  private async treeReads(layer: Layer, into: LayerCheck): Promise<void> {
    if (!isImageScheme(parseSource(layer.source).scheme)) return;
    if (into.problems.length > 0 || into.files.some((f) => f.state !== 'ok')) return;
    const source = await openImageLayer(imageOptions(this.catalog.storeRoot, layer, false));
    try {
      const report = await deepCheck(source);
      into.damaged = report.findings;
      into.damagedCount = report.damaged;
      into.objectsChecked = report.objects;
    } finally {
      await source.close().catch(() => undefined);
    }
  }
}

const READ_PROBE = 4096;

async function fileState(store: string, file: string, role: FileCheck['role'], layer: Layer, openedAs: FileStamp | undefined): Promise<FileCheck> {
  const shown = storeRelative(store, file);
  const now = await stampOf(file).catch(() => undefined);
  if (now === undefined) return { file: shown, role, state: 'missing', detail: `${layerText(layer)} reads it, and it is gone` };
  try {
    if (role === 'directory') {
      const dir = await fsp.opendir(file);
      await dir.read();
      await dir.close();
    } else {
      const fh = await fsp.open(file, 'r');
      try {
        await fh.read(Buffer.alloc(READ_PROBE), 0, READ_PROBE, 0);
      } finally {
        await fh.close();
      }
    }
  } catch (err) {
    return { file: shown, role, state: 'unreadable', detail: errorMessage(err) };
  }
  if (openedAs && !sameFile(openedAs, now)) return { file: shown, role, state: 'changed', detail: 'replaced or written since this resolver opened it' };
  if (role !== 'directory' && isSealed(layer) && now.mtimeMs > layer.updateTimeMs + MODIFIED_AFTER_SEAL_MS) {
    return { file: shown, role, state: 'changed', detail: `modified ${new Date(now.mtimeMs).toISOString()}, after the layer was last written (${new Date(layer.updateTimeMs).toISOString()}); a sealed layer's file must not change` };
  }
  return { file: shown, role, state: 'ok', detail: '' };
}
