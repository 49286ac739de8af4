import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { STRATA_BIN } from '@strata/harness';
import { NETNS_DIR, deleteNetns, run } from '../fleet/netns';
import { NsProcess } from '../fleet/ns-process';

/**
 * A network namespace of its own (loopback only: every 127.x.y.z is a
 * local address there, so resolvers can sit on 127.0.0.2 and 127.0.0.3
 * with the same port) and a hosts file of its own, seen as /etc/hosts by
 * the clients run through `client()`: each runs in a private mount
 * namespace (unshare -m) with the file bind-mounted over /etc/hosts, so
 * getaddrinfo reads it and the machine's /etc/hosts is never touched. The
 * file is rewritten in place (same inode), so a client that is running
 * sees the change at its next lookup.
 */
export class HostsNetns {
  readonly ns: string;
  readonly dir: string;
  readonly hostsFile: string;

  constructor(prefix = 'strata-names-') {
    this.ns = `${prefix}${process.pid}-${Date.now() % 100_000}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-hosts-'));
    this.hostsFile = path.join(this.dir, 'hosts');
    this.setHosts({});
    run('ip', ['netns', 'add', this.ns]);
    run('ip', ['-n', this.ns, 'link', 'set', 'lo', 'up']);
  }

  /** Adds an address to the namespace's loopback device (an IPv6 one: fd00::2). */
  addAddress(cidr: string): void {
    run('ip', ['-n', this.ns, 'addr', 'add', cidr, 'dev', 'lo', ...(cidr.includes(':') ? ['nodad'] : [])]);
  }

  /** Writes the hosts file: each name with its addresses (one line per address, as a headless Service has one record per pod). */
  setHosts(names: Record<string, readonly string[]>): void {
    const lines = ['127.0.0.1 localhost', '::1 localhost'];
    for (const [name, addresses] of Object.entries(names)) for (const a of addresses) lines.push(`${a} ${name}`);
    // writeFileSync truncates and writes the same inode: the bind mounts see the new text.
    fs.writeFileSync(this.hostsFile, `${lines.join('\n')}\n`);
  }

  /** argv run in the namespace with the hosts file as /etc/hosts (through NsProcess or `run`, which add the nsenter). */
  withHosts(argv: readonly string[]): string[] {
    return ['unshare', '-m', '--', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', this.hostsFile, ...argv];
  }

  /** The CLI in the namespace with the hosts file; bounded, never throws on a non-zero exit. */
  strata(args: readonly string[], timeoutMs = 30_000): { status: number | null; stdout: string; stderr: string } {
    const argv = ['nsenter', `--net=${NETNS_DIR}/${this.ns}`, '--', ...this.withHosts([process.execPath, STRATA_BIN, ...args])];
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 });
    return { status: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}` };
  }

  /** `strata <role> ...` in the namespace (a client role with the hosts file), at debug level, stopped cleanly when this process dies. */
  service(name: string, role: 'resolver' | 'agent', args: readonly string[], o: { hosts: boolean; env?: Record<string, string> }): NsProcess {
    const argv = [process.execPath, STRATA_BIN, role, ...args];
    return new NsProcess({
      name,
      netns: this.ns,
      argv: o.hosts ? this.withHosts(argv) : argv,
      logFile: path.join(this.dir, `${name.replace(/[^a-z0-9]+/gi, '-')}.log`),
      env: { STRATA_LOG_LEVEL: 'debug', ...o.env },
      lifeline: true,
    });
  }

  /** An HTTP GET from inside the namespace (a resolver's /metrics on its 127.0.0.x); bounded. */
  httpGet(url: string, timeoutMs = 10_000): string {
    const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(${timeoutMs - 1_000}) }).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })`;
    return run('nsenter', [`--net=${NETNS_DIR}/${this.ns}`, '--', process.execPath, '-e', script], timeoutMs);
  }

  /** Kills what is left in the namespace, deletes it and the files; returns what could not be done. */
  destroy(): string[] {
    const problems = deleteNetns(this.ns);
    fs.rmSync(this.dir, { recursive: true, force: true });
    return problems;
  }
}

/** Why this machine cannot run HostsNetns, or undefined when it can. */
export function hostsNetnsUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network and mount namespaces)';
  for (const tool of ['ip', 'nsenter', 'unshare', 'mount']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool}`;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-hosts-probe-'));
  try {
    const hosts = path.join(dir, 'hosts');
    fs.writeFileSync(hosts, '127.0.0.9 probe.strata.test\n');
    const r = spawnSync('unshare', ['-m', '--', 'sh', '-c', 'mount --bind "$0" /etc/hosts && getent hosts probe.strata.test', hosts], { encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0 || !r.stdout.includes('127.0.0.9')) return `a private /etc/hosts does not work here: ${(r.stderr || r.stdout).trim()}`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const probe = `strata-names-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}
