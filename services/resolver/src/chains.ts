import { realpathSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { chainKey } from '@strata/cache';
import { Catalog, Layer, LayerRef, isSealed } from '@strata/layers';
import { Projection } from '@strata/traversal';

/** How long anything derived from a LIVE layer may be reused: changes show within one second. */
export const LIVE_TTL_MS = 400;
/** How long a layer reference keeps resolving to the same chain (catalog refresh 500 ms + this < 1 s). */
const REF_TTL_MS = 100;

/** One layer chain as the resolver serves it. */
export interface ChainView {
  /** Cache namespace: every layer's id and generation. */
  key: string;
  /** Top layer first. */
  layers: Layer[];
  /** Undefined for sealed chains (kept until evicted); LIVE_TTL_MS otherwise. */
  ttlMs: number | undefined;
  projection: Projection;
}

/**
 * Turns layer references into chain views. Views are shared by every
 * request on the same chain so the traversal's directory cache is warm.
 */
export class Chains {
  readonly storeRealRoot: Buffer;
  private readonly views = new LRUCache<string, ChainView>({ max: 512 });
  /** The view a reference resolved to, reused briefly: the catalog only refreshes every 500 ms anyway. */
  private readonly byRef = new LRUCache<string, ChainView>({ max: 4096, ttl: REF_TTL_MS });

  constructor(readonly catalog: Catalog) {
    this.storeRealRoot = Buffer.from(realpathSync(catalog.storeRoot));
  }

  async view(ref: LayerRef): Promise<ChainView> {
    const refKey = 'id' in ref ? `i${ref.id}` : `n${ref.name}`;
    const known = this.byRef.get(refKey);
    if (known) return known;
    const view = await this.viewOf(ref);
    this.byRef.set(refKey, view);
    return view;
  }

  private async viewOf(ref: LayerRef): Promise<ChainView> {
    const layers = await this.catalog.chain(ref);
    const key = chainKey(layers);
    const cached = this.views.get(key);
    if (cached) return cached;
    const sealed = layers.every(isSealed);
    const ttlMs = sealed ? undefined : LIVE_TTL_MS;
    const roots = layers.map((l) => this.catalog.layerRoot(l));
    const view: ChainView = {
      key,
      layers,
      ttlMs,
      projection: new Projection(roots, { dirCacheEntries: 8192, ...(ttlMs ? { dirCacheTtlMs: ttlMs } : {}) }),
    };
    this.views.set(key, view, ttlMs ? { ttl: ttlMs } : undefined);
    return view;
  }
}
