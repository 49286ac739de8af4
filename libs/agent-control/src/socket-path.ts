import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Where the agent listens and the CLI connects: $STRATA_AGENT_SOCKET, else
 * /run/strata/agent.sock for root (mounting needs root), else a per-user
 * socket in the temp directory.
 */
export function defaultSocketPath(): string {
  const fromEnv = process.env.STRATA_AGENT_SOCKET;
  if (fromEnv) return path.resolve(fromEnv);
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/run/strata/agent.sock' : path.join(os.tmpdir(), `strata-agent-${uid}.sock`);
}
