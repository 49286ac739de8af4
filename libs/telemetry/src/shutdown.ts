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
}
