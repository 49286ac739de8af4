import { Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { SessionRequest, SessionResponse, fromServiceError, strataErrorFromInfo } from '@strata/protocol';
import type { Endpoint, EndpointPool } from './endpoints';
import { isRetryable } from './retry';

export type SessionPayload = NonNullable<SessionRequest['request']>;
export type SessionAnswer = Exclude<NonNullable<SessionResponse['response']>, { $case: 'error' }>;

export interface SessionClientOptions {
  pool: EndpointPool;
  /** Per request: past it the request fails with EIO (DEADLINE_EXCEEDED), whatever the resolvers do. Default 5 s. */
  deadlineMs?: number;
  /** Called when the stream moves to another resolver or loses its connection (for logs). */
  onEvent?: (event: { type: 'connected' | 'broken'; address: string; error?: StrataError }) => void;
}

interface Pending {
  id: number;
  payload: SessionPayload;
  traceContext: Record<string, string>;
  resolve: (answer: SessionAnswer) => void;
  reject: (err: StrataError) => void;
  timer: NodeJS.Timeout;
}

const MAX_RECONNECT_DELAY_MS = 1_000;

/**
 * Many requests over one Session stream, answered out of order. Every
 * Session request is a read, so when the stream breaks (resolver killed,
 * drained at shutdown, network cut) the unanswered ones are sent again on a
 * new stream to the next resolver; each request still fails after its own
 * deadline, so nothing waits forever when every resolver is down.
 */
export class SessionClient {
  private readonly pool: EndpointPool;
  private readonly deadlineMs: number;
  private readonly onEvent: SessionClientOptions['onEvent'];
  private readonly pending = new Map<number, Pending>();
  private stream: ClientDuplexStream<SessionRequest, SessionResponse> | undefined;
  private endpoint: Endpoint | undefined;
  private nextId = 1;
  private reconnectDelay = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: SessionClientOptions) {
    this.pool = options.pool;
    this.deadlineMs = options.deadlineMs ?? 5_000;
    this.onEvent = options.onEvent;
  }

  get inflight(): number {
    return this.pending.size;
  }

  get address(): string | undefined {
    return this.endpoint?.address;
  }

  request(payload: SessionPayload, traceContext: Record<string, string> = {}, deadlineMs = this.deadlineMs): Promise<SessionAnswer> {
    if (this.closed) return Promise.reject(new StrataError(Errno.EIO, 'session closed', { code: GrpcCode.CANCELLED }));
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new StrataError(Errno.EIO, `no resolver answered within ${deadlineMs} ms`, { code: GrpcCode.DEADLINE_EXCEEDED }),
        );
      }, deadlineMs);
      const p: Pending = { id, payload, traceContext, resolve, reject, timer };
      this.pending.set(id, p);
      if (this.reconnectTimer === undefined) this.send(p);
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new StrataError(Errno.EIO, 'session closed', { code: GrpcCode.CANCELLED }));
    }
    this.pending.clear();
    const s = this.stream;
    this.stream = undefined;
    s?.cancel();
  }

  private send(p: Pending): void {
    const stream = this.stream ?? this.open();
    stream.write({ id: p.id, request: p.payload, traceContext: p.traceContext });
  }

  private open(): ClientDuplexStream<SessionRequest, SessionResponse> {
    const endpoint = this.pool.pick();
    const stream = endpoint.session.session(new Metadata());
    this.stream = stream;
    this.endpoint = endpoint;
    stream.on('metadata', () => this.onEvent?.({ type: 'connected', address: endpoint.address }));
    stream.on('data', (res: SessionResponse) => {
      this.reconnectDelay = 0;
      const p = this.pending.get(res.id);
      if (!p) return; // timed out already
      this.pending.delete(res.id);
      clearTimeout(p.timer);
      const r = res.response;
      if (r === undefined) p.reject(new StrataError(Errno.EIO, 'empty session response', { code: GrpcCode.INTERNAL }));
      else if (r.$case === 'error') p.reject(strataErrorFromInfo(r.error));
      else p.resolve(r);
    });
    stream.on('error', (err: unknown) => this.broken(stream, fromServiceError(err)));
    stream.on('end', () => this.broken(stream, undefined));
    return stream;
  }

  /** The stream is gone: resend what is unanswered on a new one, after a growing pause if it keeps failing. */
  private broken(stream: ClientDuplexStream<SessionRequest, SessionResponse>, error: StrataError | undefined): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    if (this.closed) return;
    this.onEvent?.({ type: 'broken', address: this.endpoint?.address ?? '', error });
    if (error && !isRetryable(error)) {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(error);
      }
      this.pending.clear();
      return;
    }
    this.reconnectDelay = this.reconnectDelay === 0 ? 25 : Math.min(this.reconnectDelay * 2, MAX_RECONNECT_DELAY_MS);
    // A drained stream ('end' without error) is a clean handover: move at once.
    const delay = error ? this.reconnectDelay : 0;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      for (const p of this.pending.values()) this.send(p);
    }, delay);
  }
}
