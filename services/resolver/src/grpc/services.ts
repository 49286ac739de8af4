import {
  ChangeKind,
  DiffServiceServer,
  LayerServiceServer,
  ProjectionServiceServer,
  WalkResponse,
  layerRefFromProto,
} from '@strata/protocol';
import type { Logger } from '@strata/telemetry';
import type { LayerOps } from '../layer-ops';
import type { ProjectionOps } from '../projection-ops';
import { serverStream, unary } from './calls';

const CHANGE_KIND = { added: ChangeKind.CHANGE_KIND_ADDED, modified: ChangeKind.CHANGE_KIND_MODIFIED, deleted: ChangeKind.CHANGE_KIND_DELETED };

export function layerService(ops: LayerOps, log: Logger): LayerServiceServer {
  return {
    createLayer: unary('CreateLayer', log, async (req) => {
      const res = await ops.create(req);
      log.info({ event: 'layer.created', layerId: res.layer?.layerId, name: res.layer?.name }, 'layer created');
      return res;
    }),
    getLayer: unary('GetLayer', log, (req) => ops.get(req)),
    listLayers: unary('ListLayers', log, (req) => ops.list(req)),
    updateLayer: unary('UpdateLayer', log, async (req) => {
      const res = await ops.update(req);
      log.info({ event: 'layer.updated', layerId: res.layer?.layerId, generation: res.layer?.generation }, 'layer updated');
      return res;
    }),
    deleteLayer: unary('DeleteLayer', log, async (req) => {
      const res = await ops.delete(req);
      log.info({ event: 'layer.deleted', layer: req.layer?.ref }, 'layer deleted');
      return res;
    }),
  };
}

export function projectionService(ops: ProjectionOps, log: Logger): ProjectionServiceServer {
  return {
    stat: unary('Stat', log, (req) => ops.stat(layerRefFromProto(req.layer), req.path)),
    readDir: unary('ReadDir', log, (req) => ops.readDir(layerRefFromProto(req.layer), req.path, req.offset, req.limit)),
    read: serverStream('Read', log, (req) => ops.readStream(layerRefFromProto(req.layer), req.path, req.offset, req.length)),
    readLink: unary('ReadLink', log, (req) => ops.readLink(layerRefFromProto(req.layer), req.path)),
    listXattr: unary('ListXattr', log, (req) => ops.listXattr(layerRefFromProto(req.layer), req.path)),
    getXattr: unary('GetXattr', log, (req) => ops.getXattr(layerRefFromProto(req.layer), req.path, req.name)),
    statFs: unary('StatFs', log, (req) => ops.statFs(layerRefFromProto(req.layer))),
    walk: serverStream('Walk', log, async function* (req) {
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

export function diffService(ops: ProjectionOps, log: Logger): DiffServiceServer {
  return {
    diff: serverStream('Diff', log, async function* (req) {
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
