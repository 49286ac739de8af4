import type { UpdateLayerInput } from '@strata/layers';
import {
  type LayerServiceServer,
  type UpdateLayerRequest,
  layerRefFromProto,
  layerToProto,
  layerTypeFromProto,
  mountOptionsFromProto,
  optionalLayerRefFromProto,
} from '@strata/protocol';
import type { Authorizer } from '../access/authorizer';
import type { ImageOps } from '../image-ops';
import type { LayerOps } from '../layer-ops';
import { unary, type RpcContext } from './calls';
import { callerIdentity } from './tls';

/** The fields an UpdateLayer request sets (proto3 optionals: absent means unchanged). */
function updateInput(req: UpdateLayerRequest): UpdateLayerInput {
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
  return input;
}

/** LayerService: where layer messages become domain values and back. ListLayers shows what the caller may read. */
export function layerService(ops: LayerOps, authz: Authorizer, rpc: RpcContext, images?: ImageOps): LayerServiceServer {
  return {
    createLayer: unary('CreateLayer', rpc, async (req) => {
      const base = optionalLayerRefFromProto(req.base, 'base');
      const layer = await ops.create({
        source: req.source,
        filesystemPath: req.filesystemPath || undefined,
        base,
        layerType: layerTypeFromProto(req.layerType) ?? (base ? 'snapshot' : 'base'),
        name: req.name || undefined,
        mountOptions: mountOptionsFromProto(req.mountOptions),
      });
      rpc.log.info({ event: 'layer.created', layerId: layer.layerId, name: layer.name }, 'layer created');
      return { layer: layerToProto(layer) };
    }),
    getLayer: unary('GetLayer', rpc, async (req) => {
      const chain = await ops.chain(layerRefFromProto(req.layer));
      // The proto promises the whole chain, this layer first.
      const image = await images?.info(chain[0]);
      return { layer: layerToProto(chain[0]), chain: chain.map(layerToProto), image };
    }),
    listLayers: unary('ListLayers', rpc, async (req, call) => {
      const page = await ops.list(req.pageToken, req.pageSize, await authz.readable(callerIdentity(call)));
      return { layers: page.layers.map(layerToProto), nextPageToken: page.nextPageToken };
    }),
    updateLayer: unary('UpdateLayer', rpc, async (req) => {
      const layer = await ops.update(layerRefFromProto(req.layer), updateInput(req), req.force);
      rpc.log.info({ event: 'layer.updated', layerId: layer.layerId, generation: layer.generation }, 'layer updated');
      return { layer: layerToProto(layer) };
    }),
    deleteLayer: unary('DeleteLayer', rpc, async (req) => {
      await ops.delete(layerRefFromProto(req.layer), req.expectedGeneration || undefined, req.force);
      rpc.log.info({ event: 'layer.deleted', layer: req.layer?.ref, force: req.force }, 'layer deleted');
      return {};
    }),
    reportMounts: unary('ReportMounts', rpc, async (req) => {
      await ops.report(
        req.agentId,
        req.host,
        req.mounts.map((m) => ({ layerId: Number(m.layerId), mountpoint: m.mountpoint })),
        req.ttlSeconds,
      );
      return {};
    }),
  };
}
