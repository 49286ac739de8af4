import {
  DiffServiceServer,
  OPERATIONS,
  type Operation,
  type OperationHandlers,
  ProjectionServiceServer,
  type RequestOf,
  WalkResponse,
  changeKindToProto,
  layerRefFromProto,
} from '@strata/protocol';
import type { ProjectionOps } from '../projection-ops';
import { serverStream, unary, type RpcContext } from './calls';
import { wireErrorInfo } from './wire-error';

/** ProjectionService: the operation table's handlers as unary methods, plus the two streams (Read of a large range, Walk). */
export function projectionService(ops: ProjectionOps, handlers: OperationHandlers, rpc: RpcContext): ProjectionServiceServer {
  const method = <K extends Exclude<Operation, 'read'>>(op: K) => unary(OPERATIONS[op].method, rpc, (req: RequestOf<K>) => handlers[op](req));
  return {
    stat: method('stat'),
    readDir: method('readDir'),
    readLink: method('readLink'),
    listXattr: method('listXattr'),
    getXattr: method('getXattr'),
    statFs: method('statFs'),
    read: serverStream(OPERATIONS.read.method, rpc, (req) => ops.readStream(layerRefFromProto(req.layer), req.path, req.offset, req.length)),
    walk: serverStream('Walk', rpc, async function* (req) {
      const ref = layerRefFromProto(req.layer);
      for await (const batch of ops.walk(ref, req.path, req.maxDepth, req.includeLinkTargets)) {
        const msg: WalkResponse = {
          entries: batch.map((e) =>
            'error' in e
              ? { path: e.path, attr: undefined, linkTarget: Buffer.alloc(0), error: wireErrorInfo(e.error) }
              : { path: e.path, attr: e.attr, linkTarget: e.linkTarget ?? Buffer.alloc(0) },
          ),
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
          changes: changes.map((c) => ({
            path: c.path,
            kind: changeKindToProto(c.kind),
            before: c.before,
            after: c.after,
            ...(c.error ? { error: wireErrorInfo(c.error) } : {}),
          })),
        };
      }
    }),
  };
}
