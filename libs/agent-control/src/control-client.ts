import * as net from 'node:net';
import { Errno, StrataError, isErrnoName } from '@strata/errors';
import type { ControlRequest, ControlResponse } from './protocol';

/**
 * Sends one request to the agent and returns its answer; a refusal comes
 * back as a StrataError with the agent's errno, so the CLI prints one line.
 */
export function controlRequest(socketPath: string, request: ControlRequest, timeoutMs = 60_000): Promise<ControlResponse & { ok: true }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buffered = '';
    let settled = false;
    const finish = (err: StrataError | undefined, res?: ControlResponse & { ok: true }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(
      () => finish(new StrataError(Errno.ETIMEDOUT, `the agent at ${socketPath} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify(request)}\n`));
    sock.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      let res: ControlResponse;
      try {
        res = JSON.parse(buffered.slice(0, nl)) as ControlResponse;
      } catch {
        finish(StrataError.io(`the agent at ${socketPath} answered with something that is not JSON`));
        return;
      }
      if (res.ok) finish(undefined, res);
      else finish(new StrataError(isErrnoName(res.error.errno) ? Errno[res.error.errno] : Errno.EIO, res.error.message));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const none = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
      finish(
        none
          ? StrataError.notFound(`no agent is listening on ${socketPath} (start one with \`strata agent\`, or set STRATA_AGENT_SOCKET)`)
          : StrataError.io(`agent socket ${socketPath}: ${err.message}`, { cause: err }),
      );
    });
    sock.on('end', () => finish(StrataError.io(`the agent at ${socketPath} closed the connection without answering`)));
  });
}
