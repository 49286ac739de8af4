import type { ServerDuplexStream } from '@grpc/grpc-js';
import { StrataError } from '@strata/errors';
import { type AnswerCase, type OperationHandlers, SessionRequest, SessionResponse, dispatchCase, errorInfoOf, toServiceError } from '@strata/protocol';
import type { SessionAdmission } from './access-control';
import { asStrataError, type RpcContext } from './calls';
import { undecodableOf } from './undecodable';

/** Requests one Session may have in progress; more wait in HTTP/2 flow control, not in memory. */
export const SESSION_MAX_INFLIGHT = 64;

async function dispatch(handlers: OperationHandlers, req: SessionRequest, admit: SessionAdmission | undefined): Promise<AnswerCase> {
  if (!req.request) throw StrataError.invalid(`session request ${req.id} carries no known request`);
  await admit?.(req);
  return dispatchCase(handlers, req.request, undefined);
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
 * `admission` gives the stream's per-request access check (access-control.ts):
 * a refused request is answered with its error like any failed one.
 */
export function sessionHandler(
  handlers: OperationHandlers,
  rpc: RpcContext,
  hooks: SessionHooks,
  admission: (call: ServerDuplexStream<SessionRequest, SessionResponse>) => SessionAdmission | undefined = () => undefined,
) {
  const { log, tracker } = rpc;
  return (call: ServerDuplexStream<SessionRequest, SessionResponse>): void => {
    const admit = admission(call);
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
        .run(`Session.${req.request?.$case ?? 'unknown'}`, req.traceContext, () => dispatch(handlers, req, admit))
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
