import type { Command } from 'commander';
import { certificateIdentity, controlRequest, defaultSocketPath, type AgentStatus, type ResolverState } from '@strata/agent-control';
import { TLS_ENV, dialAddress, type ResolverVersion } from '@strata/client';
import { Errno, errorMessage } from '@strata/errors';
// The module alone, not the package index: a CLI call should not load the logger and OpenTelemetry.
import { buildInfo, versionText } from '@strata/telemetry/dist/version';
import { CliError, type CommandContext } from './command-context';
import { mountStateText } from './format';

/** How long the agent has to answer `status` (it reads the mount table; nothing it does waits on a resolver). */
const AGENT_TIMEOUT_MS = 5_000;
/** Default --timeout of the resolver round trips: a doctor answers quickly, even when a resolver does not. */
const RESOLVER_TIMEOUT_S = 3;

export interface StatusReport {
  ok: boolean;
  /** One line per reason the host is not healthy. */
  problems: string[];
  client: { version: string; commit?: string; node: string; tls: { mode: 'off' | 'on' | 'mutual'; identity?: string } };
  agent: ({ up: true } & AgentStatus) | { up: false; socket: string; error: string };
  resolvers: (ResolverVersion & { agentState?: ResolverState['state'] })[];
  /** Redis is behind the resolvers; none of them reports on it yet. */
  redis: { reported: false };
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function tlsText(t: { mode: string; identity?: string }): string {
  return t.mode === 'off' ? 'plaintext' : `TLS${t.mode === 'mutual' ? ' (mutual)' : ''}${t.identity ? ` as ${t.identity}` : ''}`;
}

/** The report as one screen. */
export function statusText(r: StatusReport): string {
  const lines: string[] = [];
  const a = r.agent;
  if (a.up) {
    lines.push(`agent      up, pid ${a.pid}, ${a.version ?? '?'}${a.commit ? ` (${a.commit})` : ''}, since ${a.startedAt}`);
    lines.push(`           socket ${a.socket}; to resolvers: ${tlsText(a.tls)}`);
  } else {
    lines.push(`agent      DOWN: ${a.error}`);
  }
  for (const res of r.resolvers) {
    const seen = res.agentState ? `  agent: ${res.agentState}` : '';
    if (res.error !== undefined) lines.push(`resolver   ${res.address}  DOES NOT ANSWER: ${res.error}${seen}`);
    else lines.push(`resolver   ${res.address}  ${res.version ?? '?'}${res.commit ? ` (${res.commit})` : ''}  ${(res.latencyMs ?? 0).toFixed(1)} ms${cacheText(res.metadataCache)}${seen}`);
  }
  lines.push(`client     ${versionText(r.client)}; ${tlsText(r.client.tls)}`);
  if (a.up) {
    if (a.outage) lines.push(`outage     no resolver answers since ${a.outage.since} (${a.outage.failedOps} operations failed)`);
    const dc = a.dataCache;
    lines.push(dc.maxBytes > 0 ? `data cache ${mib(dc.bytes)} of ${mib(dc.maxBytes)}, ${dc.files} file${dc.files === 1 ? '' : 's'} (${dc.dir})` : 'data cache off');
    lines.push(`memory     ${mib(a.chunkCache.bytes)} of ${mib(a.chunkCache.maxBytes)} of file data`);
    if (a.mounts.length === 0) lines.push('mounts     none');
    for (const m of a.mounts) {
      const why = m.health?.lastError && m.state !== 'serving' ? `: ${m.health.lastError.message}` : '';
      lines.push(`mount      ${m.mountpoint}  ${m.layerName || m.layerId} (layer ${m.layerId})  ${mountStateText(m)}${why}`);
    }
  }
  lines.push(r.ok ? 'status     ok' : `status     DEGRADED: ${r.problems.join('; ')}`);
  return `${lines.join('\n')}\n`;
}

/** A resolver's metadata cache in a few words: "cache redis ready", "cache redis UNREACHABLE (reconnecting)". */
function cacheText(c: { kind: string; reachable: boolean; detail: string } | undefined): string {
  if (!c) return '';
  if (c.kind !== 'redis') return `  cache ${c.kind}`;
  return c.reachable ? `  cache redis ${c.detail}` : `  cache redis UNREACHABLE (${c.detail})`;
}

/** What is wrong, one line each; empty when the host is healthy. */
export function statusProblems(agent: StatusReport['agent'], resolvers: StatusReport['resolvers']): string[] {
  const problems: string[] = [];
  if (!agent.up) problems.push(`agent down (${agent.error})`);
  for (const r of resolvers) if (r.error !== undefined) problems.push(`resolver ${r.address} does not answer`);
  for (const r of resolvers) if (r.metadataCache && !r.metadataCache.reachable) problems.push(`resolver ${r.address} cannot reach its Redis cache (${r.metadataCache.detail})`);
  if (agent.up) {
    if (agent.outage) problems.push('the agent reaches no resolver');
    for (const r of agent.resolvers) if (r.state === 'unreachable') problems.push(`the agent cannot reach resolver ${r.address}`);
    for (const m of agent.mounts) if (m.state !== undefined && m.state !== 'serving') problems.push(`mount ${m.mountpoint} is ${m.state}`);
  }
  return problems;
}

/** `strata status` (alias `doctor`): this host's agent, its resolvers and mounts, one screen or one JSON document; exit 1 when degraded. */
export function addStatusCommand(program: Command, ctx: CommandContext): void {
  program
    .command('status')
    .alias('doctor')
    .description("this host at a glance: the agent, every resolver (version, round trip), TLS identities, mounts and their state, cache use; exit 1 when anything is degraded")
    .option('--socket <path>', 'agent control socket (default $STRATA_AGENT_SOCKET, else /run/strata/agent.sock)')
    .addHelpText(
      'after',
      [
        '',
        'Resolvers: --resolver (or $STRATA_RESOLVER) when given, else the ones the agent uses.',
        'A mount is serving, degraded (its operations fail), revoked (EACCES: the agent lost its grant)',
        'or resolvers-away (no resolver answers the agent).',
      ].join('\n'),
    )
    .action(async (o: { socket?: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const socket = o.socket ?? defaultSocketPath();
      let agent: StatusReport['agent'];
      try {
        const res = await controlRequest(socket, { op: 'status' }, AGENT_TIMEOUT_MS);
        if (!res.status) throw new Error('the agent is too old to answer status (upgrade it)');
        agent = { up: true, ...res.status };
      } catch (err) {
        agent = { up: false, socket, error: errorMessage(err) };
      }
      // Without --resolver or $STRATA_RESOLVER, ask the resolvers this host's agent uses: the ones that matter here.
      if (g.resolver === undefined && !process.env.STRATA_RESOLVER && agent.up && agent.resolvers.length > 0) {
        process.env.STRATA_RESOLVER = agent.resolvers.map((r) => r.address).join(',');
      }
      if (g.timeout === undefined) cmd.parent?.setOptionValue('timeout', RESOLVER_TIMEOUT_S);
      await ctx.withClient(cmd, async (client) => {
        const versions = await client.versions();
        const seen = new Map(agent.up ? agent.resolvers.map((r) => [r.address, r.state] as const) : []);
        const resolvers = versions.map((v) => ({ ...v, ...(v.latencyMs !== undefined ? { latencyMs: Math.round(v.latencyMs * 10) / 10 } : {}), ...agentStateOf(seen, v.address) }));
        const certFile = g.tlsCert ?? (process.env[TLS_ENV.cert] || undefined);
        const caFile = g.tlsCa ?? (process.env[TLS_ENV.ca] || undefined);
        const build = buildInfo();
        const problems = statusProblems(agent, resolvers);
        const report: StatusReport = {
          ok: problems.length === 0,
          problems,
          client: {
            ...build,
            tls: { mode: certFile ? 'mutual' : caFile ? 'on' : 'off', ...(certFile ? { identity: certificateIdentity(certFile) ?? 'unreadable certificate' } : {}) },
          },
          agent,
          resolvers,
          redis: { reported: false },
        };
        if (g.json) await ctx.json(report);
        else await ctx.out(statusText(report));
        if (!report.ok) throw new CliError(Errno.EIO, `degraded: ${problems.join('; ')}`);
      });
    });
}

/**
 * What the agent says of one resolver. A name that stands for several
 * resolvers lists each as "name (ip:port)", while the agent names the
 * address it dials: either matches.
 */
function agentStateOf(seen: ReadonlyMap<string, ResolverState['state']>, address: string): { agentState?: ResolverState['state'] } {
  const state = seen.get(address) ?? seen.get(dialAddress(address));
  return state !== undefined ? { agentState: state } : {};
}
