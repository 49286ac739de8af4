import { Command, InvalidArgumentError } from 'commander';
import { defaultSocketPath } from '@strata/agent-control';
import { errorMessage } from '@strata/errors';
import { createLogger, onShutdown, startTelemetry, stopTelemetry } from '@strata/telemetry';
import { Agent } from './agent';
import { ControlServer } from './control/control-server';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

interface MountFlag {
  layer: string;
  mountpoint: string;
}

function collectMount(value: string, previous: MountFlag[] = []): MountFlag[] {
  const i = value.indexOf(':');
  if (i <= 0 || i === value.length - 1) throw new InvalidArgumentError('expected LAYER:MOUNTPOINT');
  return [...previous, { layer: value.slice(0, i), mountpoint: value.slice(i + 1) }];
}

interface Options {
  resolver: string;
  socket: string;
  mount?: MountFlag[];
  deadlineMs: number;
  chunkCacheMb: number;
  attrEntries: number;
  prefetchEntries: number;
  sealedTimeout: number;
  metricsPort?: number;
  logLevel?: string;
}

/** `strata agent ...` */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('strata agent')
    .description('hold the FUSE mounts of this host, served by the resolvers over one Session stream')
    .option('--resolver <addr>', 'resolver address(es), comma-separated', process.env.STRATA_RESOLVER ?? '127.0.0.1:7400')
    .option('--socket <path>', 'control socket (default $STRATA_AGENT_SOCKET, else /run/strata/agent.sock)', defaultSocketPath())
    .option('--mount <layer:mountpoint>', 'mount at start (repeatable)', collectMount)
    .option('--deadline-ms <n>', 'a FUSE operation fails with EIO when no resolver answered within this', positiveInt, 3000)
    .option('--chunk-cache-mb <n>', 'file data cache, MiB', positiveInt, 256)
    .option('--attr-entries <n>', 'attribute cache entries per mount', positiveInt, 500_000)
    .option('--prefetch-entries <n>', 'walk the tree into the caches at mount, up to this many entries (0: off)', nonNegativeInt, 100_000)
    .option('--sealed-timeout <s>', 'kernel entry/attr/negative cache seconds for sealed layers', positiveInt, 3600)
    .option('--metrics-port <n>', 'serve Prometheus metrics on this port (/metrics); OTLP export follows the OTEL_* variables', positiveInt)
    .option('--log-level <level>', 'trace, debug, info, warn or error')
    .showHelpAfterError();
  program.parse(argv, { from: 'user' });
  const o = program.opts<Options>();
  const log = createLogger({ service: 'strata-agent', level: o.logLevel });
  const telemetry = await startTelemetry({ service: 'strata-agent', metricsPort: o.metricsPort });

  let agent: Agent;
  let control: ControlServer;
  try {
    agent = await Agent.start({
      resolver: o.resolver,
      stateFile: `${o.socket}.mounts.json`,
      deadlineMs: o.deadlineMs,
      chunkCacheBytes: o.chunkCacheMb * 1024 * 1024,
      attrEntries: o.attrEntries,
      prefetchEntries: o.prefetchEntries,
      sealedTimeoutSeconds: o.sealedTimeout,
      log,
    });
    control = await ControlServer.listen(
      o.socket,
      async (req) => {
        switch (req.op) {
          case 'mount':
            return { ok: true, mount: await agent.mount(req.layer, req.mountpoint) };
          case 'umount':
            await agent.umount(req.mountpoint, req.lazy);
            return { ok: true };
          case 'mounts':
            return { ok: true, mounts: await agent.list() };
        }
      },
      log,
    );
  } catch (err) {
    const message = errorMessage(err);
    log.error({ event: 'agent.start_failed', err: message }, 'agent did not start');
    process.stderr.write(`strata agent: ${message}\n`);
    process.exit(1);
  }
  onShutdown(log, async () => {
    await control.close();
    await agent.stop();
    await stopTelemetry();
  });
  for (const m of o.mount ?? []) {
    try {
      await agent.mount(m.layer, m.mountpoint);
    } catch (err) {
      const message = errorMessage(err);
      log.error({ event: 'agent.start_failed', layer: m.layer, mountpoint: m.mountpoint, err: message }, 'a --mount failed');
      process.stderr.write(`strata agent: --mount ${m.layer}:${m.mountpoint}: ${message}\n`);
      await control.close();
      await agent.stop();
      process.exit(1);
    }
  }
  log.info({ event: 'agent.ready', socket: o.socket, resolver: o.resolver, mounts: (o.mount ?? []).length, ...telemetry }, 'agent ready');
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`strata agent: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}
