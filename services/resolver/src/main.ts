import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { isStrataError } from '@strata/errors';
import { createLogger, onShutdown, startTelemetry, stopTelemetry } from '@strata/telemetry';
import { Resolver } from './resolver';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** `strata resolver ...` */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('strata resolver')
    .description('serve the strata.v1 API over an image store')
    .option('--store <dir>', 'image store root (default $STRATA_STORE, else ./store, created if missing)')
    .option('--listen <host:port>', 'address to serve on', process.env.STRATA_LISTEN ?? '127.0.0.1:7400')
    .option('--redis <url>', 'shared metadata cache: redis://host:port or redis+cluster://h:p,h:p (default $STRATA_REDIS_URL)')
    .option('--cache-mb <n>', 'in-process metadata cache size in MiB', positiveInt, 256)
    .option('--grace-ms <n>', 'how long SIGTERM waits for calls in flight', positiveInt, 10_000)
    .option('--metrics-port <n>', 'serve Prometheus metrics on this port (/metrics); OTLP export follows the OTEL_* variables', positiveInt)
    .option('--log-level <level>', 'trace, debug, info, warn or error')
    .showHelpAfterError();
  program.parse(argv, { from: 'user' });
  const opts = program.opts<{ store?: string; listen: string; redis?: string; cacheMb: number; graceMs: number; metricsPort?: number; logLevel?: string }>();
  const log = createLogger({ service: 'strata-resolver', level: opts.logLevel });
  const telemetry = await startTelemetry({ service: 'strata-resolver', metricsPort: opts.metricsPort });

  let store = opts.store ?? process.env.STRATA_STORE;
  if (!store) {
    store = path.resolve('store');
    await fs.mkdir(store, { recursive: true });
  }
  const redisUrl = opts.redis ?? (process.env.STRATA_REDIS_URL || undefined);
  let resolver: Resolver;
  try {
    resolver = await Resolver.start({ store, listen: opts.listen, redisUrl, cacheMb: opts.cacheMb, log });
  } catch (err) {
    const message = isStrataError(err) || err instanceof Error ? err.message : String(err);
    log.error({ event: 'resolver.start_failed', err: message }, 'resolver did not start');
    process.stderr.write(`strata resolver: ${message}\n`);
    process.exit(1);
  }
  log.info(
    { event: 'resolver.listening', listen: opts.listen, port: resolver.port, store: path.resolve(store), cacheMb: opts.cacheMb, redis: redisUrl ? 'on' : 'off', ...telemetry },
    'resolver ready',
  );
  onShutdown(log, async () => {
    await resolver.stop(opts.graceMs);
    await stopTelemetry();
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`strata resolver: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
