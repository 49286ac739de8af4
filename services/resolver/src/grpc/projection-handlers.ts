import { type OperationHandlers, layerRefFromProto } from '@strata/protocol';
import { SESSION_READ_MAX, type ProjectionOps } from '../projection-ops';

/**
 * Every projection operation's handler, once: where the protocol's request
 * messages become domain arguments. The Session stream dispatches to these,
 * and the unary ProjectionService methods are made from them, so an
 * operation is added here and nowhere else on the server.
 */
export function projectionHandlers(ops: ProjectionOps): OperationHandlers {
  return {
    stat: (q) => ops.stat(layerRefFromProto(q.layer), q.path),
    readDir: (q) => ops.readDir(layerRefFromProto(q.layer), q.path, q.offset, q.limit),
    // One bounded answer; the unary Read streams larger ranges (see projectionService).
    read: (q) => ops.read(layerRefFromProto(q.layer), q.path, q.offset, q.length, SESSION_READ_MAX),
    readLink: (q) => ops.readLink(layerRefFromProto(q.layer), q.path),
    listXattr: (q) => ops.listXattr(layerRefFromProto(q.layer), q.path),
    getXattr: (q) => ops.getXattr(layerRefFromProto(q.layer), q.path, q.name),
    statFs: (q) => ops.statFs(layerRefFromProto(q.layer)),
  };
}
