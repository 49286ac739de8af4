import { Errno, GrpcCode, StrataError } from '@strata/errors';
import type { Catalog, UpdateLayerInput } from '@strata/layers';
import {
  CreateLayerRequest,
  CreateLayerResponse,
  DeleteLayerRequest,
  DeleteLayerResponse,
  GetLayerRequest,
  GetLayerResponse,
  ListLayersRequest,
  ListLayersResponse,
  UpdateLayerRequest,
  UpdateLayerResponse,
  layerRefFromProto,
  layerToProto,
  layerTypeFromProto,
  mountOptionsFromProto,
  optionalLayerRefFromProto,
} from '@strata/protocol';

export const LIST_DEFAULT_PAGE = 100;
export const LIST_MAX_PAGE = 1000;

function invalid(message: string): StrataError {
  return new StrataError(Errno.EINVAL, message, { code: GrpcCode.INVALID_ARGUMENT });
}

/** Page tokens are opaque to clients: the last id of the previous page. */
function encodeToken(afterId: number): string {
  return Buffer.from(`after:${afterId}`).toString('base64url');
}

function decodeToken(token: string): number {
  if (token === '') return 0;
  const m = /^after:(\d+)$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m) throw invalid(`page_token ${JSON.stringify(token)} was not issued by ListLayers`);
  return Number(m[1]);
}

/** LayerService over the catalog in the image store. */
export class LayerOps {
  constructor(private readonly catalog: Catalog) {}

  async create(req: CreateLayerRequest): Promise<CreateLayerResponse> {
    if (req.source === '') throw invalid('source is required (dir:<path in the store>)');
    const layerType = layerTypeFromProto(req.layerType);
    const base = optionalLayerRefFromProto(req.base, 'base');
    const layer = await this.catalog.create({
      source: req.source,
      filesystemPath: req.filesystemPath || undefined,
      base,
      layerType: layerType ?? (base ? 'snapshot' : 'base'),
      name: req.name || undefined,
      mountOptions: mountOptionsFromProto(req.mountOptions),
    });
    return { layer: layerToProto(layer) };
  }

  async get(req: GetLayerRequest): Promise<GetLayerResponse> {
    const chain = await this.catalog.chain(layerRefFromProto(req.layer));
    // The proto promises the whole chain, this layer first.
    return { layer: layerToProto(chain[0]), chain: chain.map(layerToProto) };
  }

  async list(req: ListLayersRequest): Promise<ListLayersResponse> {
    const after = decodeToken(req.pageToken);
    const size = req.pageSize === 0 ? LIST_DEFAULT_PAGE : Math.min(req.pageSize, LIST_MAX_PAGE);
    const { layers } = await this.catalog.list();
    const rest = layers.filter((l) => l.layerId > after);
    const page = rest.slice(0, size);
    const more = rest.length > page.length;
    return { layers: page.map(layerToProto), nextPageToken: more ? encodeToken(page[page.length - 1].layerId) : '' };
  }

  async update(req: UpdateLayerRequest): Promise<UpdateLayerResponse> {
    const input: UpdateLayerInput = {};
    if (req.expectedGeneration !== 0) input.expectedGeneration = req.expectedGeneration;
    if (req.name !== undefined) input.name = req.name;
    if (req.source !== undefined) input.source = req.source;
    if (req.filesystemPath !== undefined) input.filesystemPath = req.filesystemPath;
    if (req.mountOptions !== undefined) input.mountOptions = mountOptionsFromProto(req.mountOptions.options);
    const base = optionalLayerRefFromProto(req.base, 'base');
    if (base) input.base = base;
    const layerType = layerTypeFromProto(req.layerType);
    if (layerType) input.layerType = layerType;
    const layer = await this.catalog.update(layerRefFromProto(req.layer), input);
    return { layer: layerToProto(layer) };
  }

  async delete(req: DeleteLayerRequest): Promise<DeleteLayerResponse> {
    await this.catalog.delete(layerRefFromProto(req.layer), req.expectedGeneration || undefined);
    return {};
  }
}
