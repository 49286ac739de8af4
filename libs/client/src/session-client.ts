import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { type AnswerCase, type RequestCase, SessionRequest, SessionResponse, strataErrorFromInfo } from '@strata/protocol';
import { systemClock, type CancelTimer, type Clock } from './clock';
import { isRetryable, type EndpointPicker } from './retry';
import { formatBudget, transportError } from './transport-error';

/** A Session request case and its answer case (the protocol's operation table names them). */
export type SessionPayload = RequestCase;
export type SessionAnswer = Exclude<AnswerCase, { $case: 'error' }>;

/** The part of a grpc-js duplex call the Session client uses (a fake stream in unit tests). */
export interface SessionStream {
  write(req: SessionRequest): boolean;
  cancel(): void;
  on(event: 'data', listener: (res: SessionResponse) => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  on(event: 'end' | 'metadata', listener: () => void): unknown;
}

/** A resolver a Session stream can be opened on (an Endpoint). */
export interface SessionEndpoint {
  readonly address: string;
  /** Over TLS (a closed connection is then a refused handshake). */
  readonly secure?: boolean;
  openSession(): SessionStream;
}

export interface SessionClientOptions {
  pool: EndpointPicker<SessionEndpoint>;
  /** Per request: past it the request fails with EIO (DEADLINE_EXCEEDED), whatever the resolvers do. Default 5 s. */
  deadlineMs?: number;
  /** Called when the stream moves to another resolver or loses its connection (for logs). */
  onEvent?: (event: { type: 'connected' | 'broken'; address: string; error?: StrataError }) => void;
  /** Deadlines and reconnect pauses; the system clock unless a test drives time. */
  clock?: Clock;
}

interface Pending {
  id: number;
  payload: SessionPayload;
  traceContext: Record<string, string>;
  resolve: (answer: SessionAnswer) => void;
  reject: (err: StrataError) => void;
  cancelDeadline: CancelTimer;
}

/** First pause before reopening a stream that failed; doubles up to MAX_RECONNECT_DELAY_MS while it keeps failing. */
export const FIRST_RECONNECT_DELAY_MS = 25;
export const MAX_RECONNECT_DELAY_MS = 1_000;

function sessionClosed(): StrataError {
  return new StrataError(Errno.EIO, 'session closed', { code: GrpcCode.CANCELLED });
}

/**
 * Many requests over one Session stream, answered out of order. Every
 * Session request is a read, so when the stream breaks (resolver killed,
 * drained at shutdown, network cut) the unanswered ones are sent again on a
 * new stream to the next resolver; each request still fails after its own
 * deadline, so nothing waits forever when every resolver is down.
 */
export class SessionClient {
  private readonly pool: EndpointPicker<SessionEndpoint>;
  private readonly deadlineMs: number;
  private readonly onEvent: SessionClientOptions['onEvent'];
  private readonly clock: Clock;
  private readonly pending = new Map<number, Pending>();
  private stream: SessionStream | undefined;
  private endpoint: SessionEndpoint | undefined;
  private nextId = 1;
  private reconnectDelay = 0;
  private cancelReconnect: CancelTimer | undefined;
  private closed = false;
  /** Why the last stream broke, until an answer arrives: a request that times out says it. */
  private lastFailure: StrataError | undefined;

  constructor(options: SessionClientOptions) {
    this.pool = options.pool;
    this.deadlineMs = options.deadlineMs ?? 5_000;
    this.onEvent = options.onEvent;
    this.clock = options.clock ?? systemClock;
  }

  get inflight(): number {
    return this.pending.size;
  }

  request(payload: SessionPayload, traceContext: Record<string, string> = {}, deadlineMs = this.deadlineMs): Promise<SessionAnswer> {
    if (this.closed) return Promise.reject(sessionClosed());
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const cancelDeadline = this.clock.after(deadlineMs, () => {
        this.pending.delete(id);
        const why = this.lastFailure ? `: ${this.lastFailure.message}` : '';
        reject(new StrataError(Errno.EIO, `no resolver answered within ${formatBudget(deadlineMs)}${why}`, { code: GrpcCode.DEADLINE_EXCEEDED }));
      });
      const p: Pending = { id, payload, traceContext, resolve, reject, cancelDeadline };
      this.pending.set(id, p);
      if (this.cancelReconnect === undefined) this.send(p);
    });
  }

  close(): void {
    this.closed = true;
    this.cancelReconnect?.();
    this.cancelReconnect = undefined;
    for (const p of this.pending.values()) {
      p.cancelDeadline();
      p.reject(sessionClosed());
    }
    this.pending.clear();
    // Detached before the cancel: the CANCELLED it causes is ours, and broken() ignores streams no longer current.
    const s = this.stream;
    this.stream = undefined;
    s?.cancel();
  }

  private send(p: Pending): void {
    const stream = this.stream ?? this.open();
    stream.write({ id: p.id, request: p.payload, traceContext: p.traceContext });
  }

  private open(): SessionStream {
    const endpoint = this.pool.pick();
    const stream = endpoint.openSession();
    this.stream = stream;
    this.endpoint = endpoint;
    stream.on('metadata', () => this.onEvent?.({ type: 'connected', address: endpoint.address }));
    stream.on('data', (res: SessionResponse) => {
      this.reconnectDelay = 0;
      this.lastFailure = undefined;
      const p = this.pending.get(res.id);
      if (!p) return; // timed out already
      this.pending.delete(res.id);
      p.cancelDeadline();
      const r = res.response;
      if (r === undefined) p.reject(new StrataError(Errno.EIO, 'empty session response', { code: GrpcCode.INTERNAL }));
      else if (r.$case === 'error') p.reject(strataErrorFromInfo(r.error));
      else p.resolve(r);
    });
    stream.on('error', (err: unknown) => this.broken(stream, transportError(err, endpoint.address, undefined, endpoint.secure === true)));
    stream.on('end', () => this.broken(stream, undefined));
    return stream;
  }

  /** The stream is gone: resend what is unanswered on a new one, after a growing pause if it keeps failing. */
  private broken(stream: SessionStream, error: StrataError | undefined): void {
    // Only the current stream counts: close() detaches a stream before cancelling it, so a cancel of our own never gets here.
    if (this.stream !== stream) return;
    this.stream = undefined;
    if (this.closed) return;
    this.onEvent?.({ type: 'broken', address: this.endpoint?.address ?? '', error });
    if (error) this.lastFailure = error;
    if (error && !isRetryable(error, false)) {
      for (const p of this.pending.values()) {
        p.cancelDeadline();
        p.reject(error);
      }
      this.pending.clear();
      return;
    }
    this.reconnectDelay = this.reconnectDelay === 0 ? FIRST_RECONNECT_DELAY_MS : Math.min(this.reconnectDelay * 2, MAX_RECONNECT_DELAY_MS);
    // A drained stream ('end' without error) is a clean handover: move at once.
    const delay = error ? this.reconnectDelay : 0;
    this.cancelReconnect = this.clock.after(delay, () => {
      this.cancelReconnect = undefined;
      for (const p of this.pending.values()) this.send(p);
    });
  }
}
