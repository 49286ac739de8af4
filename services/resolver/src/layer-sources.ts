import { LRUCache } from 'lru-cache';
import { StrataError } from '@strata/errors';
import { type Catalog, type Layer, isImageScheme, isSealed, parseSource, resolveImageFile } from '@strata/layers';
import { DirSource, FdCache, GuestSource, ImageSource, LiveImageSource, openImageLayer, planImageLayer, type ImageSourceOptions, type LayerSource } from '@strata/traversal';

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
  private readonly sources = new LRUCache<string, Promise<LayerSource>>({
    max: 1024,
    dispose: (source) => void source.then((s) => s.close()).catch(() => undefined),
  });

  constructor(
    private readonly catalog: Catalog,
    private readonly storeRealRoot: Buffer,
  ) {}

  /** A layer's source (`image`: its source is a disk image); `overlayRules` for an image under `dir:` overlays (dir: layers always follow them). */
  sourceOf(layer: Layer, image: boolean, overlayRules: boolean): Promise<LayerSource> {
    const key = `${layer.layerId}@${layer.generation}${image && overlayRules ? '+o' : ''}`;
    const known = this.sources.get(key);
    // A running VM's image is looked at again (cheaply: file stamps, journal head) whenever a chain view is made of it.
    if (known) return image && !isSealed(layer) ? known.then(refreshed) : known;
    const opening = image ? openImageSource(this.catalog.storeRoot, layer, overlayRules) : Promise.resolve(this.openDir(layer));
    this.sources.set(key, opening);
    // A failed open is not remembered: the next request tries again (the image may have been fixed).
    opening.catch(() => this.sources.delete(key));
    return opening;
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

async function refreshed(source: LayerSource): Promise<LayerSource> {
  if (source instanceof LiveImageSource) await source.refresh();
  return source;
}

function imageOptions(storeRoot: string, layer: Layer, overlayRules: boolean): ImageSourceOptions {
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
