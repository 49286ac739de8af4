import { StrataError } from '@strata/errors';
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
  constructor(private readonly catalog: Catalog) {}

  create(input: CreateLayerInput): Promise<Layer> {
    if (input.source === '') throw StrataError.invalid('source is required (dir:<path in the store>)');
    return this.catalog.create(input);
  }

  /** The layer and its bases, this layer first. */
  chain(ref: LayerRef): Promise<Layer[]> {
    return this.catalog.chain(ref);
  }

  async list(pageToken: string, pageSize: number): Promise<LayerPage> {
    const after = decodeToken(pageToken);
    const size = pageSize === 0 ? LIST_DEFAULT_PAGE : Math.min(pageSize, LIST_MAX_PAGE);
    const { layers } = await this.catalog.list();
    const rest = layers.filter((l) => l.layerId > after);
    const page = rest.slice(0, size);
    const more = rest.length > page.length;
    return { layers: page, nextPageToken: more ? encodeToken(page[page.length - 1].layerId) : '' };
  }

  update(ref: LayerRef, input: UpdateLayerInput): Promise<Layer> {
    return this.catalog.update(ref, input);
  }

  delete(ref: LayerRef, expectedGeneration: number | undefined): Promise<void> {
    return this.catalog.delete(ref, expectedGeneration);
  }
}
