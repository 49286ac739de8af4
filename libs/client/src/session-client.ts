import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { type AnswerCase, type ReadRequest, type RequestCase, SessionRequest, SessionResponse, strataErrorFromInfo } from '@strata/protocol';
import { systemClock, type CancelTimer, type Clock } from './clock';
import { isRetryable, type EndpointPicker } from './retry';
import { formatBudget, transportError } from './transport-error';
import { dataPortOf, type DataLaneEvents } from './data-lane';

/** A Session request case and its answer case (the protocol's operation table names them). */
export type SessionPayload = RequestCase;
export type SessionAnswer = Exclude<AnswerCase, { $case: 'error' }>;

/** The part of a grpc-js duplex call the Session client uses (a fake stream in unit tests). */
export interface SessionStream {
  write(req: SessionRequest): boolean;
  cancel(): void;
  on(event: 'data', listener: (res: SessionResponse) => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  /** The stream's initial metadata; a resolver that offers a data stream names its port there (data-lane.ts). */
  on(event: 'metadata', listener: (md?: { get(key: string): unknown[] }) => void): unknown;
}

/** A resolver a Session stream can be opened on (an Endpoint). */
export interface SessionEndpoint {
  readonly address: string;
  /** Over TLS (a closed connection is then a refused handshake). */
  readonly secure?: boolean;
  openSession(): SessionStream;
  /** A data stream to this resolver's `port`, speaking what the Session's channel speaks. */
  openData?(port: number, events: DataLaneEvents): DataLaneHandle;
  /** False when openData() cannot (TLS credentials it cannot reuse): reads stay on the Session. */
  readonly dataCapable?: boolean;
}

/** What a SessionClient uses of a data stream (a DataLane; a fake in unit tests). */
export interface DataLaneHandle {
  send(id: number, read: ReadRequest, traceContext: Record<string, string>): void;
  close(): void;
}

export interface SessionClientOptions {
  pool: EndpointPicker<SessionEndpoint>;
  /** Per request: past it the request fails with EIO (DEADLINE_EXCEEDED), whatever the resolvers do. Default 5 s. */
  deadlineMs?: number;
  /** Called when the stream moves to another resolver or loses its connection (for logs). */
  onEvent?: (event: { type: 'connected' | 'broken'; address: string; error?: StrataError }) => void;
  /** Called when a data stream (data-lane.ts) beside the Session connects or breaks (for logs; its reads go over the Session meanwhile). */
  onDataEvent?: (event: { type: 'connected' | 'broken'; address: string; error?: StrataError }) => void;
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
  /** The data stream it was sent on (reads only), until answered or sent again. */
  lane?: DataLaneHandle;
}

/** First pause before reopening a stream that failed; doubles up to MAX_RECONNECT_DELAY_MS while it keeps failing. */
export const FIRST_RECONNECT_DELAY_MS = 25;
export const MAX_RECONNECT_DELAY_MS = 1_000;
/** First pause before a data stream that broke is opened again (its reads meanwhile go over the Session); doubles up to the max. */
export const FIRST_LANE_RETRY_MS = 1_000;
export const MAX_LANE_RETRY_MS = 60_000;

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
  private readonly onDataEvent: SessionClientOptions['onDataEvent'];
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
  /** The data stream beside the Session stream, once connected; reads go there. */
  private lane: DataLaneHandle | undefined;
  private opening: DataLaneHandle | undefined;
  private laneRetryDelay = 0;
  private cancelLaneRetry: CancelTimer | undefined;

  constructor(options: SessionClientOptions) {
    this.pool = options.pool;
    this.deadlineMs = options.deadlineMs ?? 5_000;
    this.onEvent = options.onEvent;
    this.onDataEvent = options.onDataEvent;
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
    this.dropLane();
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
    if (p.payload.$case === 'read' && this.lane) {
      p.lane = this.lane;
      this.lane.send(p.id, p.payload.read, p.traceContext);
      return;
    }
    p.lane = undefined;
    stream.write({ id: p.id, request: p.payload, traceContext: p.traceContext });
  }

  /** A request's answer, from the Session stream or the data stream. */
  private settle(id: number, answer: SessionAnswer | StrataError): void {
    this.reconnectDelay = 0;
    this.lastFailure = undefined;
    const p = this.pending.get(id);
    if (!p) return; // timed out already
    this.pending.delete(id);
    p.cancelDeadline();
    if (answer instanceof StrataError) p.reject(answer);
    else p.resolve(answer);
  }

  /** Opens the data stream the resolver of `stream` offers at `port`, unless one is open or the endpoint cannot. */
  private openLane(stream: SessionStream, endpoint: SessionEndpoint, port: number): void {
    if (this.closed || this.stream !== stream || this.lane || this.opening || !endpoint.openData || endpoint.dataCapable === false) return;
    const events: DataLaneEvents = {
      ready: () => {
        if (this.opening !== lane) return;
        this.opening = undefined;
        this.lane = lane;
        this.laneRetryDelay = 0;
        this.onDataEvent?.({ type: 'connected', address: endpoint.address });
      },
      answer: (id, answer) => this.settle(id, answer),
      broken: (error) => {
        // A lane closed by dropLane() reports nothing; one replaced since is none of ours.
        if (this.lane !== lane && this.opening !== lane) return;
        this.lane = undefined;
        this.opening = undefined;
        this.onDataEvent?.({ type: 'broken', address: endpoint.address, error });
        // Its unanswered reads go over the Session (a stream being reopened sends them when it is).
        for (const p of this.pending.values()) {
          if (p.lane !== lane) continue;
          p.lane = undefined;
          if (this.cancelReconnect === undefined && this.stream !== undefined) this.send(p);
        }
        if (this.closed || this.stream !== stream) return;
        this.laneRetryDelay = this.laneRetryDelay === 0 ? FIRST_LANE_RETRY_MS : Math.min(this.laneRetryDelay * 2, MAX_LANE_RETRY_MS);
        this.cancelLaneRetry?.();
        this.cancelLaneRetry = this.clock.after(this.laneRetryDelay, () => {
          this.cancelLaneRetry = undefined;
          this.openLane(stream, endpoint, port);
        });
      },
    };
    const lane = endpoint.openData(port, events);
    this.opening = lane;
  }

  /** Closes the data stream (its Session stream is gone or the client closes); unanswered reads on it are sent again with the rest. */
  private dropLane(): void {
    this.cancelLaneRetry?.();
    this.cancelLaneRetry = undefined;
    for (const l of [this.lane, this.opening]) l?.close();
    this.lane = undefined;
    this.opening = undefined;
    for (const p of this.pending.values()) p.lane = undefined;
  }

  private open(): SessionStream {
    const endpoint = this.pool.pick();
    const stream = endpoint.openSession();
    this.stream = stream;
    this.endpoint = endpoint;
    stream.on('metadata', (md) => {
      this.onEvent?.({ type: 'connected', address: endpoint.address });
      const port = dataPortOf(md);
      if (port !== undefined) {
        this.laneRetryDelay = 0;
        this.openLane(stream, endpoint, port);
      }
    });
    stream.on('data', (res: SessionResponse) => {
      const r = res.response;
      if (r === undefined) this.settle(res.id, new StrataError(Errno.EIO, 'empty session response', { code: GrpcCode.INTERNAL }));
      else if (r.$case === 'error') this.settle(res.id, strataErrorFromInfo(r.error));
      else this.settle(res.id, r);
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
    this.dropLane();
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
