import {
  ChangeKind,
  DiffServiceServer,
  LayerServiceServer,
  ProjectionServiceServer,
  WalkResponse,
  layerRefFromProto,
} from '@strata/protocol';
import type { LayerOps } from '../layer-ops';
import type { ProjectionOps } from '../projection-ops';
import { serverStream, unary, type RpcContext } from './calls';

const CHANGE_KIND = { added: ChangeKind.CHANGE_KIND_ADDED, modified: ChangeKind.CHANGE_KIND_MODIFIED, deleted: ChangeKind.CHANGE_KIND_DELETED };

export function layerService(ops: LayerOps, rpc: RpcContext): LayerServiceServer {
  return {
    createLayer: unary('CreateLayer', rpc, async (req) => {
      const res = await ops.create(req);
      rpc.log.info({ event: 'layer.created', layerId: res.layer?.layerId, name: res.layer?.name }, 'layer created');
      return res;
    }),
    getLayer: unary('GetLayer', rpc, (req) => ops.get(req)),
    listLayers: unary('ListLayers', rpc, (req) => ops.list(req)),
    updateLayer: unary('UpdateLayer', rpc, async (req) => {
      const res = await ops.update(req);
      rpc.log.info({ event: 'layer.updated', layerId: res.layer?.layerId, generation: res.layer?.generation }, 'layer updated');
      return res;
    }),
    deleteLayer: unary('DeleteLayer', rpc, async (req) => {
      const res = await ops.delete(req);
      rpc.log.info({ event: 'layer.deleted', layer: req.layer?.ref }, 'layer deleted');
      return res;
    }),
  };
}

export function projectionService(ops: ProjectionOps, rpc: RpcContext): ProjectionServiceServer {
  return {
    stat: unary('Stat', rpc, (req) => ops.stat(layerRefFromProto(req.layer), req.path)),
    readDir: unary('ReadDir', rpc, (req) => ops.readDir(layerRefFromProto(req.layer), req.path, req.offset, req.limit)),
    read: serverStream('Read', rpc, (req) => ops.readStream(layerRefFromProto(req.layer), req.path, req.offset, req.length)),
    readLink: unary('ReadLink', rpc, (req) => ops.readLink(layerRefFromProto(req.layer), req.path)),
    listXattr: unary('ListXattr', rpc, (req) => ops.listXattr(layerRefFromProto(req.layer), req.path)),
    getXattr: unary('GetXattr', rpc, (req) => ops.getXattr(layerRefFromProto(req.layer), req.path, req.name)),
    statFs: unary('StatFs', rpc, (req) => ops.statFs(layerRefFromProto(req.layer))),
    walk: serverStream('Walk', rpc, async function* (req) {
      const ref = layerRefFromProto(req.layer);
      for await (const batch of ops.walk(ref, req.path, req.maxDepth, req.includeLinkTargets)) {
        const msg: WalkResponse = {
          entries: batch.map((e) => ({ path: e.path, attr: e.attr, linkTarget: e.linkTarget ?? Buffer.alloc(0) })),
        };
        yield msg;
      }
    }),
  };
}

export function diffService(ops: ProjectionOps, rpc: RpcContext): DiffServiceServer {
  return {
    diff: serverStream('Diff', rpc, async function* (req) {
      const from = layerRefFromProto(req.from, 'from');
      const to = layerRefFromProto(req.to, 'to');
      const path = req.path.length === 0 ? Buffer.from('/') : req.path;
      for await (const changes of ops.diff(from, to, path)) {
        yield {
          changes: changes.map((c) => ({ path: c.path, kind: CHANGE_KIND[c.kind], before: c.before, after: c.after })),
        };
      }
    }),
  };
}
