import type { ServerUnaryCall, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { wireError } from './wire-error';
import type { Logger } from '@strata/telemetry';
import { callerIdentity } from './tls';

type Call = Parameters<typeof callerIdentity>[0] & {
  once(event: string, listener: () => void): unknown;
  emit(event: 'error', err: unknown): boolean;
};
type Callback = (err: unknown, value?: unknown, ...rest: unknown[]) => void;
type Handler = (call: Call, callback?: Callback) => void;

/**
 * Open calls per identity, over all of that identity's connections. A call
 * over the limit is refused with RESOURCE_EXHAUSTED before any work, and
 * the refusal is logged once per burst, not once per call. Calls without
 * an identity are not counted here: for them the bound is the HTTP/2
 * limit on concurrent streams of their connection (server.ts).
 */
export class CallLimiter {
  private readonly open = new Map<string, number>();
  private readonly warned = new Set<string>();

  constructor(
    readonly limit: number,
    private readonly log: Logger,
  ) {}

  /** Open calls of an identity (tests and metrics). */
  count(identity: string): number {
    return this.open.get(identity) ?? 0;
  }

  /** Every method of the service behind the count. */
  wrap<T extends UntypedServiceImplementation>(definition: ServiceDefinition, impl: T): T {
    const out: UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(impl)) {
      const method = definition[name];
      const h = handler as unknown as Handler;
      const streaming = method?.requestStream === true || method?.responseStream === true;
      const path = method?.path ?? name;
      out[name] = (streaming ? this.stream(path, h) : this.unary(path, h)) as unknown as UntypedServiceImplementation[string];
    }
    return out as T;
  }

  private unary(path: string, handler: Handler): Handler {
    return (call, callback) => {
      const respond = callback as Callback;
      const release = this.acquire(call, path);
      if (release === false) return respond(wireError(this.refusal(callerIdentity(call) as string)));
      // Released before the answer is sent, so a client that waits for it and calls again is never refused for its own finished call.
      (call as unknown as ServerUnaryCall<unknown, unknown>).once('cancelled', release);
      handler(call, (err, ...rest) => {
        release();
        respond(err, ...rest);
      });
    };
  }

  private stream(path: string, handler: Handler): Handler {
    return (call) => {
      const release = this.acquire(call, path);
      if (release === false) {
        call.emit('error', wireError(this.refusal(callerIdentity(call) as string)));
        return;
      }
      // 'finish' comes with the status (end() or an error), 'cancelled' when the client goes first.
      for (const event of ['finish', 'cancelled', 'close']) call.once(event, release);
      handler(call);
    };
  }

  /** A release function (idempotent), or false when the caller is at its limit. */
  private acquire(call: Call, path: string): (() => void) | false {
    const identity = callerIdentity(call);
    if (identity === undefined) return () => undefined;
    const n = this.open.get(identity) ?? 0;
    if (n >= this.limit) {
      if (!this.warned.has(identity)) {
        this.warned.add(identity);
        this.log.warn({ event: 'rpc.limited', caller: identity, method: path, limit: this.limit }, `${identity} has ${this.limit} calls open (--max-streams-per-identity); further calls are refused until some end`);
      }
      return false;
    }
    this.open.set(identity, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(identity) ?? 1) - 1;
      if (left <= 0) this.open.delete(identity);
      else this.open.set(identity, left);
      // Below half the limit again: the next burst is worth a line of its own.
      if (left < this.limit / 2) this.warned.delete(identity);
    };
  }

  private refusal(identity: string): StrataError {
    return new StrataError(Errno.EAGAIN, `${identity} has ${this.limit} calls open, the most one identity may (--max-streams-per-identity); retry when some have ended`, {
      code: GrpcCode.RESOURCE_EXHAUSTED,
    });
  }
}
