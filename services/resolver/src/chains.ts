import { realpathSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { chainKey } from '@strata/cache';
import { CATALOG_FRESHNESS, Catalog, LIVE_FRESHNESS, Layer, LayerRef, isSealed } from '@strata/layers';
import { Projection } from '@strata/traversal';
import { LayerSources } from './layer-sources';

/** One layer chain as the resolver serves it. */
export interface ChainView {
  /** Cache namespace: every layer's id and generation. */
  key: string;
  /** Top layer first. */
  layers: Layer[];
  /** Undefined for sealed chains (kept until evicted); LIVE_FRESHNESS.resolverRecordMs otherwise. */
  ttlMs: number | undefined;
  projection: Projection;
}

/**
 * Turns layer references into chain views. Views are shared by every
 * request on the same chain so the traversal's directory cache is warm.
 */
export class Chains {
  readonly storeRealRoot: Buffer;
  readonly sources: LayerSources;
  private readonly views = new LRUCache<string, ChainView>({ max: 512 });
  /** The view a reference resolved to, reused briefly: the catalog only refreshes every CATALOG_FRESHNESS.refreshMs anyway. */
  private readonly byRef = new LRUCache<string, ChainView>({ max: 4096, ttl: CATALOG_FRESHNESS.referenceMs });

  constructor(readonly catalog: Catalog) {
    this.storeRealRoot = Buffer.from(realpathSync(catalog.storeRoot));
    this.sources = new LayerSources(catalog, this.storeRealRoot);
  }

  async view(ref: LayerRef): Promise<ChainView> {
    const refKey = 'id' in ref ? `i${ref.id}` : `n${ref.name}`;
    const known = this.byRef.get(refKey);
    if (known) return known;
    const view = await this.viewOf(ref);
    this.byRef.set(refKey, view);
    return view;
  }

  close(): void {
    this.views.clear();
    this.sources.close();
  }

  private async viewOf(ref: LayerRef): Promise<ChainView> {
    const layers = await this.catalog.chain(ref);
    const key = chainKey(layers);
    const cached = this.views.get(key);
    if (cached) return cached;
    const sealed = layers.every(isSealed);
    const ttlMs = sealed ? undefined : LIVE_FRESHNESS.resolverRecordMs;
    // A LIVE chain's directories (and the view holding them) are a part of the one-second budget of their own.
    const dirTtl = sealed ? undefined : LIVE_FRESHNESS.resolverDirectoryMs;
    const view: ChainView = {
      key,
      layers,
      ttlMs,
      projection: new Projection(
        layers.map((l) => this.sources.sourceOf(l)),
        { dirCacheEntries: 8192, ...(dirTtl ? { dirCacheTtlMs: dirTtl } : {}) },
      ),
    };
    this.views.set(key, view, dirTtl ? { ttl: dirTtl } : undefined);
    return view;
  }
}
