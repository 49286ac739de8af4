import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseControlRequest, type ControlRequest, type ControlResponse } from '@strata/agent-control';
import { StrataError, errnoName, errorMessage } from '@strata/errors';
import type { Logger } from '@strata/telemetry';

export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse & { ok: true }>;

const MAX_REQUEST_BYTES = 64 * 1024;

function errorResponse(err: unknown): ControlResponse {
  const e = StrataError.from(err);
  return { ok: false, error: { message: e.message, errno: errnoName(e.errno) } };
}

/** Refuses to start over another live agent's socket; removes a dead one's. */
async function claimSocket(socketPath: string): Promise<void> {
  await fs.mkdir(path.dirname(socketPath), { recursive: true });
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
 * one JSON response line back. Bad input gets an error answer, never a crash.
 */
export class ControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
  ) {}

  static async listen(socketPath: string, handler: ControlHandler, log: Logger): Promise<ControlServer> {
    await claimSocket(socketPath);
    const server = net.createServer((sock) => {
      let buffered = '';
      sock.setEncoding('utf8');
      sock.on('error', () => sock.destroy());
      sock.on('data', (chunk: string) => {
        buffered += chunk;
        if (buffered.length > MAX_REQUEST_BYTES) {
          sock.end(`${JSON.stringify(errorResponse(StrataError.invalid('request too large')))}\n`);
          return;
        }
        const nl = buffered.indexOf('\n');
        if (nl < 0) return;
        const line = buffered.slice(0, nl);
        sock.removeAllListeners('data');
        let req: ControlRequest | string;
        try {
          req = parseControlRequest(JSON.parse(line));
        } catch {
          req = 'request is not JSON';
        }
        if (typeof req === 'string') {
          sock.end(`${JSON.stringify(errorResponse(StrataError.invalid(req)))}\n`);
          return;
        }
        const r = req;
        handler(r).then(
          (res) => sock.end(`${JSON.stringify(res)}\n`),
          (err: unknown) => {
            log.info({ event: 'agent.control.refused', op: r.op, err: errorMessage(err) }, 'control request refused');
            sock.end(`${JSON.stringify(errorResponse(err))}\n`);
          },
        );
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Mounting takes root; reading the mount list may be shared with the admin group.
    await fs.chmod(socketPath, 0o660);
    return new ControlServer(server, socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await fs.rm(this.socketPath, { force: true });
  }
}
