import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { Errno, StrataError } from '@strata/errors';
import {
  ANSWER_DATA,
  ANSWER_ERROR,
  DATA_MAGIC,
  ErrorInfo,
  type OperationHandlers,
  SessionRequest,
  answerHeader,
  dispatchCase,
} from '@strata/protocol';
import { SESSION_READ_MAX } from '../projection-ops';
import { answerPool } from '../projection/file-data';
import { asStrataError, type RpcContext } from './calls';
import type { SessionAdmission } from './access-control';
import { SESSION_READ_BYTES } from './session';
import { wireErrorInfo } from './wire-error';

/**
 * The data stream: a plain socket beside the gRPC port that carries only
 * Session reads, so bulk file data skips grpc-js on both sides (its
 * HTTP/2 framing, the 16 KiB buffers it assembles into a message, the
 * copies). An agent learns its port from the Session stream's initial
 * metadata (DATA_PORT_HEADER) and sends its reads here while the stream
 * lasts; everything else stays on the Session.
 *
 * Its wire format is @strata/protocol's data-stream-wire.
 *
 * It speaks what the gRPC port speaks: plaintext, or TLS with the same
 * identity and the same demand for a client certificate (mutual TLS), and
 * each request passes the same per-request access check as on a Session,
 * for the identity of the certificate this connection presented.
 */
export interface DataStreamOptions {
  /** Requests of one connection being answered or not yet taken by the socket. */
  maxInflight: number;
  /** Largest request frame; a bigger one ends the connection (before it is buffered). */
  maxRequestBytes: number;
  /** TLS as on the gRPC port: its identity, and whether callers must present a certificate from its client CA. */
  tls?: { options: SecureContextOptions; requestCert: boolean };
  /** The per-request check for a connection's caller, as a Session's (access-control.ts); undefined: nothing enforced. */
  admission?: (caller: { getAuthContext(): { sslPeerCertificate?: ReturnType<TLSSocket['getPeerCertificate']> } }) => SessionAdmission | undefined;
}

/** The data stream's listener and its connections. */
export class DataStreamServer {
  private readonly server: Server;
  private readonly tls: boolean;
  private readonly sockets = new Set<Socket>();
  private draining = false;

  constructor(
    private readonly handlers: OperationHandlers,
    private readonly rpc: RpcContext,
    private readonly options: DataStreamOptions,
  ) {
    const t = options.tls;
    this.tls = t !== undefined;
    this.server = t
      ? createTlsServer({ ...t.options, requestCert: t.requestCert, rejectUnauthorized: true, noDelay: true }, (socket) => this.serve(socket))
      : createServer({ noDelay: true }, (socket) => this.serve(socket));
    // A failed handshake is the caller's problem, not the listener's.
    this.server.on('tlsClientError', () => undefined);
  }

  /** A new identity (SIGHUP): connections made from now on get it, open ones keep theirs. */
  setSecureContext(options: SecureContextOptions): void {
    if (this.tls) (this.server as ReturnType<typeof createTlsServer>).setSecureContext(options);
  }

  /** Listens on `host` at `port` (0: one of the system's choosing); resolves with the port bound. */
  listen(host: string, port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const a = this.server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : 0);
      });
    });
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** No new connections; each open one ends once its answers in progress are written (its client moves to the Session). */
  drain(): void {
    this.draining = true;
    this.server.close();
    for (const s of this.sockets) s.emit('strata-drain');
  }

  /** Ends every connection at once. */
  close(): void {
    this.draining = true;
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }

  private serve(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    // Answers end in a short segment: Nagle would hold it for the client's delayed ACK.
    socket.setNoDelay(true);
    // A crashed or vanished agent's connection is found and closed, as gRPC keepalive does for its Session.
    socket.setKeepAlive(true, 30_000);
    const { log, tracker } = this.rpc;
    const tlsSocket = this.tls ? (socket as TLSSocket) : undefined;
    const admit = this.options.admission?.({ getAuthContext: () => ({ sslPeerCertificate: tlsSocket?.getPeerCertificate() }) });
    let inflight = 0;
    let readBytes = 0;
    let ended = false;
    let held: Buffer = Buffer.alloc(0);
    let greeted = false;

    let corked = false;
    /**
     * Answers finished in one turn of the event loop (the store reads that
     * completed together) leave in one write: a write call per answer cost
     * more than its small file's bytes. Uncorked in the check phase, right
     * after that turn's callbacks.
     */
    const batch = (): void => {
      if (corked) return;
      corked = true;
      socket.cork();
      setImmediate(() => {
        corked = false;
        socket.uncork();
      });
    };

    let pump: () => void = () => undefined;
    const flow = (): void => {
      const hold = inflight >= this.options.maxInflight || readBytes >= SESSION_READ_BYTES;
      if (hold && !socket.isPaused()) socket.pause();
      else if (!hold && socket.isPaused() && !ended) socket.resume();
    };
    const maybeEnd = (): void => {
      if (ended && inflight === 0 && !socket.destroyed) socket.end();
    };
    const answer = (req: SessionRequest): void => {
      const read = req.request?.$case === 'read' ? req.request.read : undefined;
      const reserved = read && read.length > 0 && read.length < SESSION_READ_MAX ? read.length : SESSION_READ_MAX;
      inflight++;
      readBytes += reserved;
      flow();
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        inflight--;
        readBytes -= reserved;
        pump();
        maybeEnd();
      };
      const run = async () => {
        if (!read) throw StrataError.invalid(`the data stream carries reads only (request ${req.id} is ${req.request?.$case ?? 'empty'})`);
        await admit?.(req);
        return dispatchCase(this.handlers, { $case: 'read', read }, undefined);
      };
      // The Session's operation over another transport: counted and traced as Session.read (dashboards, tests by metrics).
      tracker
        .run('Session.read', req.traceContext, run)
        .then(
          (res) => {
            if (res.$case !== 'read') throw new StrataError(Errno.EIO, 'a read answered with something else');
            const { offset, data, eof } = res.read;
            if (socket.destroyed) return settle();
            batch();
            socket.write(answerHeader(req.id, offset, ANSWER_DATA, eof, data.length));
            socket.write(data, (err) => {
              // Taken by the kernel: a pooled answer buffer is read into again (a failed write may still hold it: left to the collector).
              if (!err) answerPool.giveBack(data);
              settle();
            });
          },
          (err: unknown) => {
            if (socket.destroyed) return settle();
            const info = Buffer.from(ErrorInfo.encode(wireErrorInfo(asStrataError(err, log, 'DataStream'))).finish());
            batch();
            socket.write(Buffer.concat([answerHeader(req.id, read?.offset ?? 0, ANSWER_ERROR, false, info.length), info]), () => settle());
          },
        )
        .catch((err: unknown) => {
          log.warn({ event: 'data_stream.write_failed', err }, 'data stream answer could not be written');
          settle();
        });
    };

    const holding = (): boolean => inflight >= this.options.maxInflight || readBytes >= SESSION_READ_BYTES;
    /** Starts the requests held whole, while the bounds allow (a settled answer calls it again). */
    pump = (): void => {
      while (!ended && !holding() && held.length >= 4) {
        const n = held.readUInt32LE(0);
        if (n > this.options.maxRequestBytes) {
          log.warn({ event: 'data_stream.refused', bytes: n }, 'data stream request too large; connection closed');
          socket.destroy();
          return;
        }
        if (held.length < 4 + n) break;
        let req: SessionRequest;
        try {
          req = SessionRequest.decode(held.subarray(4, 4 + n));
        } catch {
          log.warn({ event: 'data_stream.refused' }, 'undecodable data stream request; connection closed');
          socket.destroy();
          return;
        }
        held = held.subarray(4 + n);
        answer(req);
      }
      flow();
    };
    socket.on('data', (chunk: Buffer) => {
      if (ended) return;
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      if (!greeted) {
        if (held.length < DATA_MAGIC.length) return;
        if (!held.subarray(0, DATA_MAGIC.length).equals(DATA_MAGIC)) {
          socket.destroy();
          return;
        }
        greeted = true;
        held = held.subarray(DATA_MAGIC.length);
      }
      // Bounded: reading pauses while the bounds hold, so what is kept is one socket read beyond them.
      pump();
    });
    socket.on('strata-drain', () => {
      ended = true;
      socket.pause();
      maybeEnd();
    });
    socket.on('end', () => {
      ended = true;
      maybeEnd();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
  }
}
