import type { Logger } from 'pino';

export type ShutdownHandler = (signal: NodeJS.Signals) => Promise<void>;

/**
 * Runs `handler` once on the first SIGTERM or SIGINT, then exits 0 (1 when
 * the handler fails). A second signal while shutting down exits at once, so
 * an operator is never stuck behind a drain that does not finish.
 */
export function onShutdown(log: Logger, handler: ShutdownHandler): void {
  let stopping = false;
  const on = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ event: 'shutdown.forced', signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    log.info({ event: 'shutdown.begin', signal }, 'shutting down');
    handler(signal).then(
      () => {
        log.info({ event: 'shutdown.done' }, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ event: 'shutdown.failed', err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', on);
  process.on('SIGINT', on);
  if (process.env.STRATA_EXIT_WITH_PARENT === '1') watchParent(log, () => on('SIGTERM'));
}

/**
 * A launcher that asked for it (STRATA_EXIT_WITH_PARENT=1) holds the other
 * end of our stdin: end of file there means the launcher is gone, however
 * it died, and we stop as if it had sent SIGTERM, unmounting what we mounted.
 */
function watchParent(log: Logger, stop: () => void): void {
  const stdin = process.stdin;
  let gone = false;
  const lost = (): void => {
    if (gone) return;
    gone = true;
    log.warn({ event: 'shutdown.parent_gone', ppid: process.ppid }, 'the process that started us is gone: stopping');
    stop();
  };
  stdin.on('error', lost);
  stdin.on('end', lost);
  stdin.on('close', lost);
  // Read (and drop) anything: only the end matters. Unref'd so the lifeline alone keeps nothing running.
  stdin.on('data', () => undefined);
  stdin.resume();
  (stdin as NodeJS.ReadStream & { unref?: () => void }).unref?.();
}
