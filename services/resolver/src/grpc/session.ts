import type { ServerDuplexStream } from '@grpc/grpc-js';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { SessionRequest, SessionResponse, errorInfoOf, layerRefFromProto, toServiceError } from '@strata/protocol';
import { SESSION_READ_MAX, type ProjectionOps } from '../projection-ops';
import { asStrataError, type RpcContext } from './calls';
import { undecodableOf } from './undecodable';

/** Requests one Session may have in progress; more wait in HTTP/2 flow control, not in memory. */
export const SESSION_MAX_INFLIGHT = 64;

async function dispatch(ops: ProjectionOps, req: SessionRequest): Promise<SessionResponse['response']> {
  const r = req.request;
  switch (r?.$case) {
    case 'stat':
      return { $case: 'stat', stat: await ops.stat(layerRefFromProto(r.stat.layer), r.stat.path) };
    case 'readDir': {
      const q = r.readDir;
      return { $case: 'readDir', readDir: await ops.readDir(layerRefFromProto(q.layer), q.path, q.offset, q.limit) };
    }
    case 'read': {
      const q = r.read;
      return { $case: 'read', read: await ops.read(layerRefFromProto(q.layer), q.path, q.offset, q.length, SESSION_READ_MAX) };
    }
    case 'readLink':
      return { $case: 'readLink', readLink: await ops.readLink(layerRefFromProto(r.readLink.layer), r.readLink.path) };
    case 'listXattr':
      return { $case: 'listXattr', listXattr: await ops.listXattr(layerRefFromProto(r.listXattr.layer), r.listXattr.path) };
    case 'getXattr': {
      const q = r.getXattr;
      return { $case: 'getXattr', getXattr: await ops.getXattr(layerRefFromProto(q.layer), q.path, q.name) };
    }
    case 'statFs':
      return { $case: 'statFs', statFs: await ops.statFs(layerRefFromProto(r.statFs.layer)) };
    default:
      throw new StrataError(Errno.EINVAL, `session request ${req.id} carries no known request`, {
        code: GrpcCode.INVALID_ARGUMENT,
      });
  }
}

/** A live Session as the server sees it, for counting and for draining at shutdown. */
export interface SessionHandle {
  /** Stops reading requests, answers those in progress, then ends the stream (the client moves elsewhere). */
  drain(): void;
}

export interface SessionHooks {
  opened(session: SessionHandle): void;
  closed(session: SessionHandle): void;
}

/**
 * The agent's channel. Each request runs as soon as it arrives and its
 * response is written when ready, so answers come back out of order. Flow
 * control both ways: at most SESSION_MAX_INFLIGHT requests run at once, and
 * while the client does not read its responses (write() returns false) no
 * new request is read, so a stalled client costs bounded memory.
 */
export function sessionHandler(ops: ProjectionOps, rpc: RpcContext, hooks: SessionHooks) {
  const { log, tracker } = rpc;
  return (call: ServerDuplexStream<SessionRequest, SessionResponse>): void => {
    let inflight = 0;
    let blocked = false;
    let inputEnded = false;
    let finished = false;

    const flow = (): void => {
      const hold = blocked || inflight >= SESSION_MAX_INFLIGHT;
      if (hold && !call.isPaused()) call.pause();
      else if (!hold && call.isPaused()) call.resume();
    };
    const finish = (): void => {
      if (finished) return;
      finished = true;
      hooks.closed(handle);
    };
    const maybeEnd = (): void => {
      if (inputEnded && inflight === 0 && !finished) {
        call.end();
        finish();
      }
    };
    const send = (res: SessionResponse): void => {
      if (finished || call.cancelled) return;
      if (!call.write(res) && !blocked) {
        blocked = true;
        call.once('drain', () => {
          blocked = false;
          flow();
        });
      }
    };

    const handle: SessionHandle = {
      drain: () => {
        inputEnded = true;
        call.pause();
        maybeEnd();
      },
    };
    hooks.opened(handle);

    call.on('data', (req: SessionRequest) => {
      if (inputEnded) return; // draining: the client retries it elsewhere
      const bad = undecodableOf(req);
      if (bad) {
        if (bad.id === undefined) {
          call.emit('error', toServiceError(bad.error));
          finish();
          return;
        }
        send({ id: bad.id, response: { $case: 'error', error: errorInfoOf(bad.error) } });
        return;
      }
      inflight++;
      flow();
      tracker
        .run(`Session.${req.request?.$case ?? 'unknown'}`, req.traceContext, () => dispatch(ops, req))
        .then(
          (response) => send({ id: req.id, response }),
          (err: unknown) => send({ id: req.id, response: { $case: 'error', error: errorInfoOf(asStrataError(err, log, 'Session')) } }),
        )
        .finally(() => {
          inflight--;
          flow();
          maybeEnd();
        });
    });
    call.on('end', () => {
      inputEnded = true;
      maybeEnd();
    });
    call.on('cancelled', finish);
    call.on('error', finish);
    call.on('close', finish);
  };
}
