import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import { parseControlRequest, type ControlRequest, type ControlResponse } from '@strata/agent-control';
import { Errno, StrataError, errnoName, errorMessage } from '@strata/errors';
import { socketPeer, type PeerCredentials } from '@strata/fuse-kernel';
import type { Logger } from '@strata/telemetry';
import { prepareSocketDir } from './socket-dir';

/** Who is on the other end of a control connection (SO_PEERCRED at connect). */
export type ControlCaller = PeerCredentials;

export type ControlHandler = (req: ControlRequest, caller: ControlCaller) => Promise<ControlResponse & { ok: true }>;

/** How long and how much a control client may take; what one local user may hold. */
export const CONTROL_LIMITS = {
  /** A connection whose request line is not complete by then is answered ETIMEDOUT and closed. */
  requestTimeoutMs: 5_000,
  /** A request line longer than this is answered EINVAL and the connection closed. */
  maxRequestBytes: 64 * 1024,
  /** Connections one non-root uid may have open at once; the next is refused at once (EAGAIN). */
  maxConnectionsPerUser: 16,
  /** A refused client that does not read its answer is cut off after this. */
  lingerMs: 1_000,
} as const;

export interface ControlServerOptions {
  /** Open the socket to this group (socket 0660, directory 0750), else root only (0600, 0700). */
  group?: { name: string; gid: number };
  requestTimeoutMs?: number;
  maxRequestBytes?: number;
  maxConnectionsPerUser?: number;
  /** Told about every connection refused before its request reached the handler. */
  onRefused?: (caller: ControlCaller, reason: string, detail: Record<string, string | number>) => void;
}

function errorLine(err: unknown): string {
  const e = StrataError.from(err);
  const res: ControlResponse = { ok: false, error: { message: e.message, errno: errnoName(e.errno) } };
  return `${JSON.stringify(res)}\n`;
}

/** Refuses to start over another live agent's socket; removes a dead one's. */
async function claimSocket(socketPath: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(socketPath);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
  if (alive) throw StrataError.precondition(`another agent is listening on ${socketPath}`);
  await fs.rm(socketPath, { force: true });
}

/**
 * The agent's local control socket: one JSON request line per connection,
 * one JSON response line back, with the caller's uid/gid/pid from the
 * kernel (SO_PEERCRED) handed to the handler. A client that sends garbage,
 * a line that never ends or one too long, or holds too many connections,
 * is answered and dropped without holding up anyone else.
 */
export class ControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
  ) {}

  static async listen(socketPath: string, handler: ControlHandler, log: Logger, options: ControlServerOptions = {}): Promise<ControlServer> {
    const timeoutMs = options.requestTimeoutMs ?? CONTROL_LIMITS.requestTimeoutMs;
    const maxBytes = options.maxRequestBytes ?? CONTROL_LIMITS.maxRequestBytes;
    const perUser = options.maxConnectionsPerUser ?? CONTROL_LIMITS.maxConnectionsPerUser;
    const dirState = await prepareSocketDir(socketPath, options.group?.gid);
    await claimSocket(socketPath);
    const open = new Map<number, number>();

    const server = net.createServer((sock) => {
      sock.on('error', () => sock.destroy());
      let caller: ControlCaller;
      try {
        caller = socketPeer(sock);
      } catch (err) {
        log.warn({ event: 'agent.control.no_peer', err: errorMessage(err) }, 'control connection without credentials; dropped');
        sock.destroy();
        return;
      }
      let done = false;
      const refuse = (err: StrataError, reason: string, detail: Record<string, string | number> = {}): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.removeListener('data', onData);
        options.onRefused?.(caller, reason, detail);
        sock.end(errorLine(err));
        // end() waits for the client to take the answer; one that never reads is not waited for.
        setTimeout(() => sock.destroy(), CONTROL_LIMITS.lingerMs).unref();
      };

      if (caller.uid !== 0) {
        const n = open.get(caller.uid) ?? 0;
        if (n >= perUser) {
          options.onRefused?.(caller, 'too many connections', { limit: perUser });
          sock.end(errorLine(new StrataError(Errno.EAGAIN, `too many control connections of uid ${caller.uid} at once (at most ${perUser})`)));
          setTimeout(() => sock.destroy(), CONTROL_LIMITS.lingerMs).unref();
          return;
        }
        open.set(caller.uid, n + 1);
        sock.once('close', () => {
          const left = (open.get(caller.uid) ?? 1) - 1;
          if (left <= 0) open.delete(caller.uid);
          else open.set(caller.uid, left);
        });
      }

      const timer = setTimeout(() => refuse(new StrataError(Errno.ETIMEDOUT, `no complete request line within ${timeoutMs} ms`), 'request timed out', { timeoutMs }), timeoutMs);
      sock.once('close', () => clearTimeout(timer));
      const chunks: Buffer[] = [];
      let size = 0;
      function onData(chunk: Buffer): void {
        const nl = chunk.indexOf(0x0a);
        const take = nl < 0 ? chunk : chunk.subarray(0, nl);
        size += take.length;
        if (size > maxBytes) {
          refuse(StrataError.invalid(`request too large (more than ${maxBytes} bytes)`), 'request too large', { maxBytes });
          return;
        }
        chunks.push(take);
        if (nl < 0) return;
        clearTimeout(timer);
        sock.removeListener('data', onData);
        const line = Buffer.concat(chunks).toString('utf8');
        let req: ControlRequest | string;
        try {
          req = parseControlRequest(JSON.parse(line));
        } catch {
          req = 'request is not JSON';
        }
        if (typeof req === 'string') {
          refuse(StrataError.invalid(req), 'malformed request', { problem: req });
          return;
        }
        done = true;
        const r = req;
        handler(r, caller).then(
          (res) => sock.end(`${JSON.stringify(res)}\n`),
          (err: unknown) => {
            log.info({ event: 'agent.control.refused', op: r.op, uid: caller.uid, peerPid: caller.pid, err: errorMessage(err) }, 'control request refused');
            sock.end(errorLine(err));
          },
        );
      }
      sock.on('data', onData);
    });

    // bind(2) runs inside listen(): under this umask the socket is born 0600, never briefly open to others.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
        process.umask(umask);
      });
    } finally {
      process.umask(umask);
    }
    if (options.group) {
      await fs.chown(socketPath, process.getuid?.() ?? 0, options.group.gid);
      await fs.chmod(socketPath, 0o660);
    } else {
      await fs.chmod(socketPath, 0o600);
    }
    if (dirState === 'shared') {
      log.info({ event: 'agent.control.shared_dir', socket: socketPath }, "the socket's directory is not the agent's own: left as it is, the socket's mode decides who may connect");
    }
    return new ControlServer(server, socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await fs.rm(this.socketPath, { force: true });
  }
}
