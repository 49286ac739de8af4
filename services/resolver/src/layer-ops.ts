import { Errno, StrataError, isStrataError } from '@strata/errors';
import type { MountRegistry } from './mount-registry';
import type { Catalog, CreateLayerInput, Layer, LayerRef, UpdateLayerInput } from '@strata/layers';

export const LIST_DEFAULT_PAGE = 100;
export const LIST_MAX_PAGE = 1000;

/** Page tokens are opaque to clients: the last id of the previous page. */
function encodeToken(afterId: number): string {
  return Buffer.from(`after:${afterId}`).toString('base64url');
}

function decodeToken(token: string): number {
  if (token === '') return 0;
  const m = /^after:(\d+)$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m) throw StrataError.invalid(`page_token ${JSON.stringify(token)} was not issued by ListLayers`);
  return Number(m[1]);
}

export interface LayerPage {
  layers: Layer[];
  nextPageToken: string;
}

/** LayerService over the catalog in the image store, in domain terms (the gRPC layer converts). */
export class LayerOps {
  constructor(
    private readonly catalog: Catalog,
    private readonly mounts: MountRegistry,
  ) {}

  create(input: CreateLayerInput): Promise<Layer> {
    if (input.source === '') throw StrataError.invalid('source is required (dir:<path in the store>)');
    return this.catalog.create(input);
  }

  /** The layer and its bases, this layer first. */
  chain(ref: LayerRef): Promise<Layer[]> {
    return this.catalog.chain(ref);
  }

  /** A page of the layers `visible` lets through (all by default), by id. */
  async list(pageToken: string, pageSize: number, visible: (layer: Layer) => boolean = () => true): Promise<LayerPage> {
    const after = decodeToken(pageToken);
    const size = pageSize === 0 ? LIST_DEFAULT_PAGE : Math.min(pageSize, LIST_MAX_PAGE);
    const { layers } = await this.catalog.list();
    const rest = layers.filter((l) => l.layerId > after && visible(l));
    const page = rest.slice(0, size);
    const more = rest.length > page.length;
    return { layers: page, nextPageToken: more ? encodeToken(page[page.length - 1].layerId) : '' };
  }

  /** `force`: change it even if mounts use it (they are withdrawn); a rename alone never needs it. */
  async update(ref: LayerRef, input: UpdateLayerInput, force = false): Promise<Layer> {
    if (!force) {
      const [layer] = await this.catalog.chain(ref);
      if (await this.changesTree(layer, input)) await this.refuseInUse(layer, 'change');
    }
    return this.catalog.update(ref, input);
  }

  /** Whether the update changes what the layer shows (its name alone does not; values it already has do not). */
  private async changesTree(layer: Layer, input: UpdateLayerInput): Promise<boolean> {
    if (input.source !== undefined && input.source !== layer.source) return true;
    if (input.filesystemPath !== undefined && input.filesystemPath !== layer.filesystemPath) return true;
    if (input.layerType !== undefined && input.layerType !== layer.layerType) return true;
    if (input.mountOptions !== undefined) {
      const wanted = [...new Set(['read-only', ...input.mountOptions])].sort();
      if (wanted.join() !== [...layer.mountOptions].sort().join()) return true;
    }
    if (input.base !== undefined) {
      const [base] = await this.catalog.chain(input.base);
      if (base.layerId !== layer.baseLayerId) return true;
    }
    return false;
  }

  async delete(ref: LayerRef, expectedGeneration: number | undefined, force = false): Promise<void> {
    if (!force) await this.refuseInUse((await this.catalog.chain(ref))[0], 'delete');
    return this.catalog.delete(ref, expectedGeneration);
  }

  /** Reports of the agents whose mounts' chains contain the layer. */
  private async mountsUsing(target: Layer): Promise<{ host: string; mountpoint: string; layerId: number }[]> {
    const users: { host: string; mountpoint: string; layerId: number }[] = [];
    const chains = new Map<number, number[] | undefined>();
    for (const report of await this.mounts.current()) {
      for (const m of report.mounts) {
        if (!chains.has(m.layerId)) {
          try {
            chains.set(m.layerId, (await this.catalog.chain({ id: m.layerId })).map((l) => l.layerId));
          } catch (err) {
            // A mount of a layer deleted by force: it protects nothing any more.
            if (!isStrataError(err) || err.errno !== Errno.ENOENT) throw err;
            chains.set(m.layerId, undefined);
          }
        }
        if (chains.get(m.layerId)?.includes(target.layerId)) users.push({ host: report.host, mountpoint: m.mountpoint, layerId: m.layerId });
      }
    }
    return users;
  }

  private async refuseInUse(target: Layer, verb: 'change' | 'delete'): Promise<void> {
    const users = await this.mountsUsing(target);
    if (users.length === 0) return;
    const where = users
      .slice(0, 3)
      .map((u) => `${u.host}:${u.mountpoint}${u.layerId === target.layerId ? '' : ` (layer ${u.layerId} builds on it)`}`)
      .join(', ');
    const more = users.length > 3 ? ` and ${users.length - 3} more` : '';
    throw StrataError.precondition(
      `layer ${target.layerId}${target.name ? ` (${target.name})` : ''} is in use by ${users.length} mount${users.length === 1 ? '' : 's'}: ${where}${more}; --force would ${verb} it anyway and withdraw those mounts`,
    );
  }

  report(agentId: string, host: string, mounts: { layerId: number; mountpoint: string }[], ttlSeconds: number): Promise<void> {
    return this.mounts.report(agentId, host, mounts, ttlSeconds);
  }
}
