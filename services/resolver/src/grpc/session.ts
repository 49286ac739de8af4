import { Metadata, type ServerDuplexStream } from '@grpc/grpc-js';
import { StrataError } from '@strata/errors';
import { type AnswerCase, DATA_PORT_HEADER, type OperationHandlers, SessionRequest, SessionResponse, dispatchCase } from '@strata/protocol';
import { SESSION_READ_MAX } from '../projection-ops';
import type { SessionAdmission } from './access-control';
import { asStrataError, type RpcContext } from './calls';
import { undecodableOf } from './undecodable';
import { wireError, wireErrorInfo } from './wire-error';

/**
 * File data one Session may have in flight: reads being answered plus read
 * answers the client has not taken. Other answers are small (a listing page
 * at most), so this and the request count bound what a Session that never
 * reads holds: about this much, whatever --session-inflight is.
 */
export const SESSION_READ_BYTES = 16 << 20;

/** The most file data a Session request can be answered with (reserved when it is read). */
function readReserve(req: SessionRequest): number {
  if (req.request?.$case !== 'read') return 0;
  const length = req.request.read.length;
  return length > 0 && length < SESSION_READ_MAX ? length : SESSION_READ_MAX;
}

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
 * control both ways: a request counts as in flight from when it is read
 * until its answer has gone to the transport (the write's callback, which
 * waits for the client's HTTP/2 window), and at most `maxInflight` are; at
 * the limit no new request is read, and the client's further requests wait
 * in HTTP/2 flow control. The same holds while SESSION_READ_BYTES of file
 * data are in flight. So a client that sends and never reads holds at most
 * `maxInflight` answers, and about SESSION_READ_BYTES, per Session.
 * `admission` gives the stream's per-request access check (access-control.ts):
 * a refused request is answered with its error like any failed one.
 * `dataPort` names the data stream (data-stream.ts) in the stream's
 * initial metadata: the client may send its reads there.
 */
export function sessionHandler(
  handlers: OperationHandlers,
  rpc: RpcContext,
  hooks: SessionHooks,
  maxInflight: number,
  admission: (call: ServerDuplexStream<SessionRequest, SessionResponse>) => SessionAdmission | undefined = () => undefined,
  dataPort: () => number | undefined = () => undefined,
) {
  const { log, tracker } = rpc;
  return (call: ServerDuplexStream<SessionRequest, SessionResponse>): void => {
    const admit = admission(call);
    const port = dataPort();
    if (port !== undefined) {
      const md = new Metadata();
      md.set(DATA_PORT_HEADER, String(port));
      call.sendMetadata(md);
    }
    let inflight = 0;
    let readBytes = 0;
    let inputEnded = false;
    let finished = false;

    const flow = (): void => {
      const hold = inflight >= maxInflight || readBytes >= SESSION_READ_BYTES;
      if (hold && !call.isPaused()) call.pause();
      else if (!hold && call.isPaused() && !inputEnded) call.resume();
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
    /** Writes an answer; `taken` runs once the transport has it (or the stream is gone). */
    const send = (res: SessionResponse, taken: () => void = () => undefined): void => {
      if (finished || call.cancelled) return taken();
      call.write(res, taken);
    };
    /** The end of one request's time in flight; called at most once per request, whatever reports it. */
    const settler = (reserved = 0): (() => void) => {
      let done = false;
      return () => {
        if (done) return;
        done = true;
        inflight--;
        readBytes -= reserved;
        flow();
        maybeEnd();
      };
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
          call.emit('error', wireError(bad.error));
          finish();
          return;
        }
        // An undecodable request's refusal counts like any answer: a client sending only garbage is held to the same bound.
        inflight++;
        flow();
        send({ id: bad.id, response: { $case: 'error', error: wireErrorInfo(bad.error) } }, settler());
        return;
      }
      const reserved = readReserve(req);
      inflight++;
      readBytes += reserved;
      flow();
      const settled = settler(reserved);
      tracker
        .run(`Session.${req.request?.$case ?? 'unknown'}`, req.traceContext, () => dispatch(handlers, req, admit))
        .then(
          (response) => send({ id: req.id, response }, settled),
          (err: unknown) => send({ id: req.id, response: { $case: 'error', error: wireErrorInfo(asStrataError(err, log, 'Session')) } }, settled),
        )
        .catch((err: unknown) => {
          // A write that throws (stream torn down under it) must not leave the request counted.
          log.warn({ event: 'session.write_failed', err }, 'session answer could not be written');
          settled();
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
