import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HolderClient } from '@strata/fuse-kernel';
import { forceUnmount, startAgent, startResolver, strata, type AgentArgs, type AgentProcess, type ResolverProcess } from '@strata/harness';

/**
 * What the agent tests on real processes set up the same way: a temporary
 * directory holding a store (dir: layers written from file maps, or a store
 * made elsewhere), a resolver on it, the layers created through the CLI,
 * agents on that resolver and directories to mount on; and their teardown,
 * every step of it run even when one before it fails, none of it unbounded
 * (a process stop ends in SIGKILL, the holder is asked with a timeout).
 */

export type CliResult = ReturnType<typeof strata>;

/** Writes each relative path's bytes below `root`, making the directories on the way. */
export function writeFiles(root: string, files: Iterable<readonly [string, Buffer | string]>): void {
  for (const [rel, bytes] of files) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), bytes);
  }
}

/**
 * Ends the fd holder of the agents on `socket` (it keeps their mounts when
 * they die or hand over): asked for its pid (bounded), then SIGKILL. Gone
 * already, or never started: nothing to do.
 */
export async function killHolder(socket: string): Promise<void> {
  const sock = path.join(`${socket}.state`, 'holder.sock');
  if (!fs.existsSync(sock)) return;
  try {
    const c = await HolderClient.connect(sock, { timeoutMs: 2000 });
    const { pid } = await c.status();
    c.close();
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

export interface StoreOptions {
  /** Prefix of the temporary directory's name (strata-<what>-). */
  prefix: string;
  /** Files of dir: layers, by the layer's directory under <store>/layers. */
  layers?: Record<string, Iterable<readonly [string, Buffer | string]>>;
  /** A store made elsewhere (a StoreFixture's): used as it is, not removed here. */
  store?: string;
  /** More arguments of the resolver (metrics, ...). */
  resolverExtra?: string[];
}

export interface StoreAndAgents {
  /** The temporary directory: the store (unless given), mountpoints, anything else of the test. */
  readonly work: string;
  readonly store: string;
  /** The resolver started last on the store. */
  readonly resolver: ResolverProcess;
  /** `strata ARGS` with this resolver as STRATA_RESOLVER (and `env` on top); never throws. */
  cli(args: string[], env?: Record<string, string>): CliResult;
  /** `strata layer create ARGS` for each argument list, each asserted to succeed. */
  createLayers(...creates: string[][]): void;
  /** Another resolver on the same store (the earlier one stopped by the test); it becomes `resolver`. */
  restartResolver(): Promise<ResolverProcess>;
  /** An agent of this resolver; stopped at close with `stopSignal` (SIGTERM: a --no-takeover agent unmounts what it serves). */
  startAgent(a?: Omit<AgentArgs, 'resolver'>, stopSignal?: NodeJS.Signals): Promise<AgentProcess>;
  /** A new directory `name` under work to mount on; whatever is mounted there is detached at close. */
  mountpoint(name: string): string;
  /** The fd holder of agents on `socket` is killed at close, after the agents stopped. */
  killHolderAtClose(socket: string): void;
  /** Everything above undone: agents, holders, mounts, resolvers, the directory. */
  close(): Promise<void>;
}

/** The store, written; its resolver, started. A failure on the way undoes what was made. */
export async function startStoreAndAgents(o: StoreOptions): Promise<StoreAndAgents> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `strata-${o.prefix}-`));
  const store = o.store ?? path.join(work, 'store');
  const agents: { agent: AgentProcess; signal: NodeJS.Signals }[] = [];
  const resolvers: ResolverProcess[] = [];
  const holders = new Set<string>();
  const mounts: string[] = [];
  const quietly = async (step: () => unknown): Promise<void> => {
    try {
      await step();
    } catch {
      // Teardown goes on: what one step leaves, the next may still clear.
    }
  };
  const close = async (): Promise<void> => {
    for (const { agent, signal } of agents) await quietly(() => agent.stop(signal));
    for (const socket of holders) await quietly(() => killHolder(socket));
    for (const m of mounts) await quietly(() => forceUnmount(m));
    for (const r of resolvers) await quietly(() => r.stop());
    await quietly(() => fs.rmSync(work, { recursive: true, force: true }));
  };
  try {
    for (const [dir, files] of Object.entries(o.layers ?? {})) {
      const root = path.join(store, 'layers', dir);
      fs.mkdirSync(root, { recursive: true });
      writeFiles(root, files);
    }
    resolvers.push(await startResolver({ store, extra: o.resolverExtra }));
  } catch (err) {
    await close();
    throw err;
  }
  const rig: StoreAndAgents = {
    work,
    store,
    get resolver() {
      return resolvers[resolvers.length - 1];
    },
    cli: (args, env = {}) => strata(args, { STRATA_RESOLVER: rig.resolver.address, ...env }),
    createLayers(...creates) {
      for (const args of creates) {
        const r = rig.cli(['layer', 'create', ...args]);
        assert.equal(r.status, 0, `layer create ${args.join(' ')}: ${r.stderr}`);
      }
    },
    async restartResolver() {
      const r = await startResolver({ store, extra: o.resolverExtra });
      resolvers.push(r);
      return r;
    },
    async startAgent(a = {}, stopSignal = 'SIGTERM') {
      const agent = await startAgent({ ...a, resolver: rig.resolver.address });
      agents.push({ agent, signal: stopSignal });
      return agent;
    },
    mountpoint(name) {
      const p = path.join(work, name);
      fs.mkdirSync(p, { recursive: true });
      mounts.push(p);
      return p;
    },
    killHolderAtClose(socket) {
      holders.add(socket);
    },
    close,
  };
  return rig;
}
