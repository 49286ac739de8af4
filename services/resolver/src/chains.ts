import { realpathSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { chainKey } from '@strata/cache';
import { createHash } from 'node:crypto';
import { CATALOG_FRESHNESS, Catalog, LIVE_FRESHNESS, Layer, LayerRef, isImageScheme, isSealed, parseSource } from '@strata/layers';
import { Projection } from '@strata/traversal';
import { Errno, StrataError } from '@strata/errors';
import { LayerSources } from './layer-sources';
import type { Privileges } from './privileges';
import type { Logger } from '@strata/telemetry';

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

  constructor(
    readonly catalog: Catalog,
    private readonly privileges: Privileges = { readsTrustedXattrs: true, readsEveryFile: true },
    private readonly log?: Logger,
  ) {
    this.storeRealRoot = Buffer.from(realpathSync(catalog.storeRoot));
    this.sources = new LayerSources(catalog, this.storeRealRoot, log);
  }

  async view(ref: LayerRef): Promise<ChainView> {
    const refKey = 'id' in ref ? `i${ref.id}` : `n${ref.name}`;
    const known = this.byRef.get(refKey);
    if (known) return known;
    const view = await this.viewOf(ref);
    this.byRef.set(refKey, view);
    return view;
  }

  /** The traversal's events (a damaged object, once per path) as warn lines of the resolver's log. */
  private damageLog(log: Logger): (event: Record<string, unknown>) => void {
    return (event) => log.warn(event, `${String(event.event)} ${String(event.path ?? '')}`.trim());
  }

  close(): void {
    this.views.clear();
    this.sources.close();
  }

  /**
   * A `dir:` layer above another one may mark a directory opaque with a
   * trusted.overlay.* xattr, which a resolver without CAP_SYS_ADMIN cannot
   * see: it would merge that directory with its base and serve a wrong tree
   * without knowing. Such chains are refused instead.
   */
  private checkCanMerge(top: Layer, merged: readonly { layer: Layer; image: boolean }[]): void {
    if (this.privileges.readsTrustedXattrs) return;
    if (!merged.slice(0, -1).some((m) => !m.image)) return;
    throw StrataError.precondition(
      `layer ${top.layerId}${top.name ? ` (${top.name})` : ''} merges dir: layers, and this resolver cannot see the trusted.overlay.* xattrs that mark opaque directories (it lacks CAP_SYS_ADMIN); it refuses to serve a tree it would get wrong`,
      Errno.EACCES,
    );
  }

  private async viewOf(ref: LayerRef): Promise<ChainView> {
    const layers = await this.catalog.chain(ref);
    const merged = mergedLayers(layers);
    this.checkCanMerge(layers[0], merged);
    const sources = await Promise.all(merged.map((m, i) => this.sources.sourceOf(m.layer, m.image, i > 0)));
    // Image layers are keyed by their files too (device, inode, size, mtime of every image of the backing chain).
    const images = merged.flatMap((m, i) => (m.image ? [sources[i].identity] : []));
    const key = images.length === 0 ? chainKey(layers) : `${chainKey(layers)}:${createHash('sha256').update(images.join('\n')).digest('base64url').slice(0, 16)}`;
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
      projection: new Projection(sources, { dirCacheEntries: 8192, ...(dirTtl ? { dirCacheTtlMs: dirTtl } : {}), ...(this.log ? { log: this.damageLog(this.log) } : {}) }),
    };
    this.views.set(key, view, dirTtl ? { ttl: dirTtl } : undefined);
    return view;
  }
}

/**
 * The layers the file-level merge reads: from the top down to the first
 * image layer. An image is a complete filesystem; the layers below it are
 * its backing chain, read at block level inside the image, not merged.
 */
export function mergedLayers(chain: readonly Layer[]): { layer: Layer; image: boolean }[] {
  const out: { layer: Layer; image: boolean }[] = [];
  for (const layer of chain) {
    const image = isImageScheme(parseSource(layer.source).scheme);
    out.push({ layer, image });
    if (image) break;
  }
  return out;
}
