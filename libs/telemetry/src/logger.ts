import pino, { type Logger } from 'pino';
import { LogDestination } from './log-destination';
import { activeTraceIds } from './otel';
import { redactSecrets, redactValue } from './redact';

export type { Logger };

export interface LoggerOptions {
  /** Written into every line as `service`. */
  service: string;
  /** pino level name; default from STRATA_LOG_LEVEL, else "info". */
  level?: string;
  /** Where lines go (default stderr, so stdout stays free for command output). */
  destination?: number;
  /** Bytes held for a reader that does not keep up before lines are dropped (default 4 MiB). */
  bufferBytes?: number;
}

/**
 * One JSON object per line, written at once (a process that is killed or
 * exits right after logging still leaves the line behind) but never
 * waiting for the reader: a stderr nobody reads (journald wedged, a
 * supervisor that stopped reading) costs log lines, counted and reported as
 * one `log.dropped` line once it reads again, never the JavaScript thread
 * that serves mounts and calls (log-destination.ts). Secrets in strings
 * (URL passwords, password=) are redacted from every line.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = new LogDestination({
    fd: options.destination ?? 2,
    bufferBytes: options.bufferBytes,
    // Called later, from a timer: by then `logger` is set.
    onDropped: (lines) => logger.warn({ event: 'log.dropped', lines }, `${lines} log lines dropped: their reader did not keep up`),
  });
  const logger: Logger = pino(
    {
      level: options.level ?? process.env.STRATA_LOG_LEVEL ?? 'info',
      base: { service: options.service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        // A Redis URL with its password, an error quoting one: never written out as given.
        log: (object) => redactValue(object) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)) as Parameters<typeof method>);
        },
      },
      // Lines written inside a traced operation carry its ids (empty when tracing is off).
      mixin: () => activeTraceIds() ?? {},
    },
    destination,
  );
  return logger;
}
