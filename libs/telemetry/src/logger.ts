import pino, { type Logger } from 'pino';
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
}

/**
 * One JSON object per line, synchronous writes: a process that is killed or
 * exits right after logging still leaves the line behind. Secrets in
 * strings (URL passwords, password=) are redacted from every line.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = pino.destination({ dest: options.destination ?? 2, sync: true });
  // A reader of our stderr that went away (a launcher that died) costs the log lines, never the process: it still has mounts to undo.
  destination.on('error', () => undefined);
  return pino(
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
}
