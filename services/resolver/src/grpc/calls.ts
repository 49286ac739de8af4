import type { ServerUnaryCall, ServerWritableStream, ServiceError, sendUnaryData } from '@grpc/grpc-js';
import { Errno, GrpcCode, StrataError, isStrataError } from '@strata/errors';
import { wireError } from './wire-error';
import type { Logger } from '@strata/telemetry';
import type { RequestTracker } from '../observability/request-tracker';
import { undecodableOf } from './undecodable';

/** What every handler needs besides its ops: the log and the request tracker (spans, latency). */
export interface RpcContext {
  log: Logger;
  tracker: RequestTracker;
}

/**
 * Every failure as a StrataError: ours pass through with their errno; anything
 * else is a bug, logged with its stack and reported as INTERNAL (the process
 * keeps serving).
 */
export function asStrataError(err: unknown, log: Logger, method: string): StrataError {
  if (isStrataError(err)) return err;
  log.error({ event: 'rpc.internal', method, err }, 'internal error');
  return new StrataError(Errno.EIO, `internal error in ${method}`, { code: GrpcCode.INTERNAL, cause: err });
}

export function serviceError(err: unknown, log: Logger, method: string): Partial<ServiceError> {
  return wireError(asStrataError(err, log, method));
}

/** A unary handler from an async function. */
export function unary<Req, Res>(
  method: string,
  rpc: RpcContext,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  const { log, tracker } = rpc;
  return (call, callback) => {
    const bad = undecodableOf(call.request);
    if (bad) {
      callback(wireError(bad.error));
      return;
    }
    // Through a promise, so a synchronous throw (bad layer ref) is answered like any other error.
    tracker
      .run(method, call.metadata.getMap(), () => Promise.resolve().then(() => fn(call.request, call)))
      .then(
      (res) => callback(null, res),
      (err: unknown) => callback(serviceError(err, log, method)),
    );
  };
}

/** Resolves when the stream can take more, or when the client is gone. */
function writable(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      call.off('error', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', done);
  });
}

/**
 * A server-streaming handler from an async generator. Messages are written
 * only as fast as the client reads them (write() returning false waits for
 * drain), so a stalled client holds one message, not the whole answer; a
 * cancelled call (client gone, deadline passed) stops the generator.
 */
export function serverStream<Req, Res>(
  method: string,
  rpc: RpcContext,
  fn: (req: Req, call: ServerWritableStream<Req, Res>) => AsyncGenerator<Res>,
): (call: ServerWritableStream<Req, Res>) => void {
  const { log, tracker } = rpc;
  return (call) => {
    const bad = undecodableOf(call.request);
    if (bad) {
      call.emit('error', wireError(bad.error));
      return;
    }
    const fail = (err: unknown): void => {
      if (!call.cancelled) call.emit('error', serviceError(err, log, method));
    };
    tracker
      .run(method, call.metadata.getMap(), async () => {
        // Made inside the try: a handler that checks its request before its first yield (a Read without a layer) throws here, and must be answered, not left as an unhandled rejection that ends the process.
        let gen: AsyncGenerator<Res> | undefined;
        try {
          gen = fn(call.request, call);
          for await (const msg of gen) {
            if (call.cancelled) break;
            if (!call.write(msg)) await writable(call as ServerWritableStream<unknown, unknown>);
            if (call.cancelled) break;
          }
          if (!call.cancelled) call.end();
        } catch (err) {
          fail(err);
        } finally {
          await gen?.return(undefined);
        }
      })
      .catch(fail);
  };
}
