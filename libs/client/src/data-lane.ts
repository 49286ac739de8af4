import { connect, type Socket } from 'node:net';
import { connect as connectTls, type SecureContext } from 'node:tls';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import {
  ANSWER_DATA,
  ANSWER_ERROR,
  ANSWER_HEADER_BYTES,
  DATA_MAGIC,
  DATA_PORT_HEADER,
  ErrorInfo,
  MAX_ERROR_BYTES,
  SessionRequest,
  strataErrorFromInfo,
  type ReadRequest,
} from '@strata/protocol';
import { answerBuffer } from './answer-buffers';
import type { SessionAnswer } from './session-client';

/*
 * The client end of the resolver's data stream (services/resolver/src/grpc/
 * data-stream.ts has the wire format): Session reads over a plain socket.
 * A plaintext socket is read with `onread`: between answers node's native
 * read fills one staging buffer, which holds the next headers and, for the
 * small answers a tree read is made of, whole answers, several per read
 * (each copied out: a copy of a few KiB costs less than a read call of its
 * own); the body of an answer that does not fit is read straight into the
 * buffer it is handed over in. One buffer per answer (the one the data
 * cache keeps; a large one may be given back for reuse: answer-buffers.ts). Over TLS (same context as the Session's channel, so
 * mutual TLS presents the same certificate) the decrypted bytes are copied
 * into place.
 */

/** The staging buffer between answers: headers, and small answers whole. */
export const STAGE_BYTES = 64 * 1024;

/** How a lane speaks TLS: the channel's context, and the name the resolver's certificate is checked against (none: the host, an IP). */
export interface DataLaneTls {
  secureContext: SecureContext;
  servername?: string;
}

/** The data port a Session stream's initial metadata names, if any. */
export function dataPortOf(md: { get(key: string): unknown[] } | undefined): number | undefined {
  const v = md?.get(DATA_PORT_HEADER)[0];
  if (typeof v !== 'string' || !/^[0-9]{1,5}$/.test(v)) return undefined;
  const port = Number(v);
  return port > 0 && port < 65536 ? port : undefined;
}

export interface DataLaneEvents {
  /** The lane is connected: reads may be sent. */
  ready(): void;
  /** Request `id` answered (a read, or its error). */
  answer(id: number, answer: SessionAnswer | StrataError): void;
  /** The lane is gone (closed by either side, refused, a protocol error); requests sent on it are not answered. */
  broken(error: StrataError): void;
}

interface Asked {
  offset: number;
  length: number;
}

/** One data stream connection; used by a SessionClient beside its Session stream. */
export class DataLane {
  private readonly socket: Socket;
  private readonly asked = new Map<number, Asked>();
  /** Bytes read between answers: [stageAt, stageEnd) not parsed yet. */
  private readonly stage = Buffer.allocUnsafe(STAGE_BYTES);
  private stageAt = 0;
  private stageEnd = 0;
  private corked = false;
  /** The answer whose body is being read straight into its buffer: the buffer, how much of it is in, and what it is. */
  private body: { id: number; kind: number; eof: boolean; offset: number; into: Buffer; got: number } | undefined;
  private done = false;
  ready = false;

  constructor(
    host: string,
    port: number,
    private readonly events: DataLaneEvents,
    tls?: DataLaneTls,
  ) {
    const ready = (): void => {
      if (this.done) return;
      this.ready = true;
      this.events.ready();
    };
    if (tls) {
      this.socket = connectTls({ host, port, secureContext: tls.secureContext, servername: tls.servername });
      this.socket.setNoDelay(true);
      this.socket.on('secureConnect', ready);
      this.socket.on('data', (chunk: Buffer) => this.consume(chunk));
    } else {
      this.socket = connect({
        host,
        port,
        noDelay: true,
        onread: {
          buffer: () => this.target(),
          callback: (n: number) => this.received(n),
        },
      });
      this.socket.on('connect', ready);
    }
    // A resolver host that vanished is noticed (its reads then go over the Session, whose own keepalive moves it).
    this.socket.setKeepAlive(true, 30_000);
    this.socket.write(DATA_MAGIC);
    this.socket.on('error', (err) => this.fail(new StrataError(Errno.EIO, `data stream to ${host}:${port}: ${err.message}`, { code: GrpcCode.UNAVAILABLE, cause: err })));
    this.socket.on('close', () => this.fail(new StrataError(Errno.EIO, `data stream to ${host}:${port} closed`, { code: GrpcCode.UNAVAILABLE })));
  }

  /** Requests not answered yet. */
  get inflight(): number {
    return this.asked.size;
  }

  /** Sends a read; its answer comes to events.answer. */
  send(id: number, read: ReadRequest, traceContext: Record<string, string>): void {
    const req = SessionRequest.encode({ id, request: { $case: 'read', read }, traceContext }).finish();
    const frame = Buffer.allocUnsafe(4 + req.length);
    frame.writeUInt32LE(req.length, 0);
    frame.set(req, 4);
    this.asked.set(id, { offset: read.offset, length: read.length });
    // The reads asked in one turn of the event loop (a read and its siblings' prefetch, the READs the kernel sent
    // meanwhile) leave in one write, not a syscall each: the check phase comes right after the callbacks of a turn.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(frame);
  }

  close(): void {
    this.done = true;
    this.ready = false;
    this.asked.clear();
    this.socket.destroy();
  }

  private fail(error: StrataError): void {
    if (this.done) return;
    this.done = true;
    this.ready = false;
    this.asked.clear();
    this.socket.destroy();
    this.events.broken(error);
  }

  /** Where the next bytes go: the rest of the answer being read straight into its buffer, or the staging buffer. */
  private target(): Buffer {
    if (this.body) return this.body.into.subarray(this.body.got);
    if (this.stageAt === this.stageEnd) {
      this.stageAt = 0;
      this.stageEnd = 0;
    } else if (this.stageEnd - this.stageAt < ANSWER_HEADER_BYTES && this.stageAt > 0) {
      // Part of a header at the end: moved to the start, so the rest always fits behind it.
      this.stage.copy(this.stage, 0, this.stageAt, this.stageEnd);
      this.stageEnd -= this.stageAt;
      this.stageAt = 0;
    }
    return this.stage.subarray(this.stageEnd);
  }

  /** Bytes that came in a buffer of their own (TLS): copied into place piece by piece. */
  private consume(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.done) {
      const n = chunk.copy(this.target(), 0, at);
      at += n;
      this.received(n);
    }
  }

  /** `n` bytes were read into the buffer handed out last. Returning false would pause the socket; answers are always taken. */
  private received(n: number): boolean {
    if (this.done) return true;
    const b = this.body;
    if (b) {
      b.got += n;
      if (b.got === b.into.length) {
        this.body = undefined;
        this.finish(b.id, b.kind, b.eof, b.offset, b.into);
      }
      return true;
    }
    this.stageEnd += n;
    this.parseStage();
    return true;
  }

  /**
   * Every whole answer in the staging buffer, in order; an answer whose body
   * is not all there yet gets its own buffer with what came of it, and the
   * rest is read straight into that buffer. Bounded: each pass consumes a
   * header or ends.
   */
  private parseStage(): void {
    while (!this.done && this.stageEnd - this.stageAt >= ANSWER_HEADER_BYTES) {
      const a = this.startBody(this.stage.subarray(this.stageAt, this.stageAt + ANSWER_HEADER_BYTES));
      if (!a) return;
      const at = this.stageAt + ANSWER_HEADER_BYTES;
      const have = Math.min(a.length, this.stageEnd - at);
      const into = answerBuffer(a.length);
      this.stage.copy(into, 0, at, at + have);
      this.stageAt = at + have;
      if (have === a.length) {
        this.finish(a.id, a.kind, a.eof, a.offset, into);
        continue;
      }
      // Only the last answer of a read can be cut short: the stage is empty behind it.
      this.body = { ...a, into, got: have };
      return;
    }
  }

  /** A header is in: checked against what was asked; undefined (the lane failed) when it does not fit. */
  private startBody(h: Buffer): { id: number; kind: number; eof: boolean; offset: number; length: number } | undefined {
    const id = h.readUInt32LE(0) + h.readUInt32LE(4) * 2 ** 32;
    const offset = h.readUInt32LE(8) + h.readUInt32LE(12) * 2 ** 32;
    const kind = h[16];
    const length = h.readUInt32LE(20);
    const asked = this.asked.get(id);
    const bound = kind === ANSWER_ERROR ? MAX_ERROR_BYTES : (asked?.length ?? 0);
    if (!asked || (kind !== ANSWER_DATA && kind !== ANSWER_ERROR) || h[17] > 1 || length > bound || (kind === ANSWER_DATA && offset !== asked.offset)) {
      this.fail(new StrataError(Errno.EIO, `data stream protocol error: an answer to ${asked ? `request ${id}` : `unknown request ${id}`} (kind ${kind}, ${length} bytes at ${offset})`, { code: GrpcCode.INTERNAL }));
      return undefined;
    }
    return { id, kind, eof: h[17] === 1, offset, length };
  }

  private finish(id: number, kind: number, eof: boolean, offset: number, bytes: Buffer): void {
    if (this.done || !this.asked.delete(id)) return;
    if (kind === ANSWER_DATA) {
      this.events.answer(id, { $case: 'read', read: { offset, data: bytes, eof } });
      return;
    }
    let error: StrataError;
    try {
      error = strataErrorFromInfo(ErrorInfo.decode(bytes));
    } catch {
      error = new StrataError(Errno.EIO, `data stream: undecodable error for request ${id}`, { code: GrpcCode.INTERNAL });
    }
    this.events.answer(id, error);
  }
}
