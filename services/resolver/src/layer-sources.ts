import { LRUCache } from 'lru-cache';
import { type Catalog, type Layer, isSealed } from '@strata/layers';
import { DirSource, FdCache, type LayerSource } from '@strata/traversal';

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
  private readonly sources = new LRUCache<string, LayerSource>({
    max: 1024,
    dispose: (source) => void source.close(),
  });

  constructor(
    private readonly catalog: Catalog,
    private readonly storeRealRoot: Buffer,
  ) {}

  sourceOf(layer: Layer): LayerSource {
    const key = `${layer.layerId}@${layer.generation}`;
    const known = this.sources.get(key);
    if (known) return known;
    const source = new DirSource(this.catalog.layerRoot(layer), {
      storeRoot: this.storeRealRoot,
      ...(isSealed(layer) ? { fdCache: this.fds } : { live: true }),
    });
    this.sources.set(key, source);
    return source;
  }

  close(): void {
    this.sources.clear();
    this.fds.clear();
  }
}
