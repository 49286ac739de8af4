import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { HAVE_REDIS, REPO, freePort, startResolver, strata, waitFor, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * Issue 23 item 2, through a real resolver: a Redis password given on the
 * command line reaches neither /metrics, nor the OTLP export, nor the log,
 * nor --check-config; argv is never exported; the metrics listener binds
 * only where it is told; and it says which build runs (item 7).
 */

const SECRET = 'Sup3rSecretPw';
const skip = HAVE_REDIS ? false : 'needs redis-server (deploy/install-deps.sh installs it)';

/** Every body an OTLP/HTTP exporter sends, as text (JSON encoding). */
async function rawOtlpReceiver(): Promise<{ endpoint: string; bodies: string[]; close(): Promise<void> }> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      bodies.push(`${req.url ?? ''} ${Buffer.concat(parts).toString('utf8')}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** GET with a deadline: status and body. */
function get(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Whether a TCP connection to host:port is accepted within a second. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

/** A Redis that wants a password: the resolver's URL carries it, as an operator's would. */
async function passwordRedis(): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-redis-pw-'));
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--requirepass', SECRET], {
    stdio: 'ignore',
  });
  await waitFor(
    'redis with a password',
    () => spawnSync('redis-cli', ['-p', String(port), '--no-auth-warning', '-a', SECRET, 'ping'], { encoding: 'utf8', timeout: 2000 }).stdout?.trim() === 'PONG' || undefined,
    10_000,
  );
  return {
    port,
    stop: async () => {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function otherAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

describe('secrets and argv stay out of telemetry', { skip }, () => {
  let fx: StoreFixture;
  let redis: Awaited<ReturnType<typeof passwordRedis>>;
  let receiver: Awaited<ReturnType<typeof rawOtlpReceiver>>;
  let resolver: ResolverProcess;
  let client: StrataClient;
  let metricsPort = 0;
  let redisUrl = '';
  const stderr: string[] = [];

  before(async () => {
    fx = await makeStore([{ entries: [{ type: 'file', path: '/etc/hostname', content: 'metrics\n' }] }]);
    redis = await passwordRedis();
    receiver = await rawOtlpReceiver();
    metricsPort = await freePort();
    redisUrl = `redis://:${SECRET}@127.0.0.1:${redis.port}`;
    resolver = await startResolver({
      store: fx.store,
      redis: redisUrl,
      extra: ['--metrics-listen', `127.0.0.1:${metricsPort}`],
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_TRACES_SAMPLER: 'always_on',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_METRIC_EXPORT_INTERVAL: '300',
      },
    });
    resolver.child.stderr?.on('data', (d: Buffer) => stderr.push(d.toString('utf8')));
    client = new StrataClient({ resolver: resolver.address, deadlineMs: 5000 });
    // Traffic: a span per request, the cache through Redis.
    for (let i = 0; i < 3; i++) assert.equal((await client.readFile({ id: fx.layers[0].layerId }, '/etc/hostname')).toString(), 'metrics\n');
  });

  after(async () => {
    client?.close();
    await resolver?.stop();
    await redis?.stop();
    await receiver?.close();
    fx?.cleanup();
  });

  test('/metrics: no password, no argv; strata_build_info names the version of package.json and the node running it', async () => {
    const { status, body } = await get(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(status, 200);
    assert.ok(!body.includes(SECRET), 'the password is on /metrics');
    assert.doesNotMatch(body, /command_args|process_command|executable_path|--redis|--store/);
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const info = /^strata_build_info\{([^}]*)\} 1$/m.exec(body);
    assert.ok(info, body.slice(0, 2000));
    assert.match(info[1], new RegExp(`version="${pkg.version.replace(/\./g, '\\.')}"`));
    assert.match(info[1], new RegExp(`node="${process.versions.node.replace(/\./g, '\\.')}"`));
    // Process and runtime metrics come with it.
    assert.match(body, /^strata_process_memory_bytes\{[^}]*kind="heap_used"/m);
    assert.match(body, /^strata_process_event_loop_delay_seconds\{[^}]*stat="p99"/m);
  });

  test('OTLP export (resource, spans, metrics): no password, no argv', async () => {
    await waitFor('spans and metrics at the receiver', () => {
      const all = receiver.bodies.join('\n');
      return all.includes('/v1/traces') && all.includes('/v1/metrics') && all.includes('strata.build_info') ? true : undefined;
    }, 15_000);
    const all = receiver.bodies.join('\n');
    assert.ok(!all.includes(SECRET), 'the password was exported');
    assert.doesNotMatch(all, /process\.command|process\.executable|--redis|--store/);
    assert.match(all, /"service\.version"/);
  });

  test('the log and --check-config show the Redis URL without its password', () => {
    const log = stderr.join('') + JSON.stringify(resolver.logs);
    assert.ok(!log.includes(SECRET), 'the password is in the log');
    for (const json of [[], ['--json']]) {
      const r = strata(['resolver', '--store', fx.store, '--redis', redisUrl, '--metrics-listen', String(metricsPort), '--check-config', ...json]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET), r.stdout);
      assert.match(r.stdout, /redis:\/\/:\*\*\*@127\.0\.0\.1/);
      assert.match(r.stdout, /metrics-listen/);
    }
  });

  test('the metrics listener is where it was told (loopback), /healthz answers there, and nowhere else', async () => {
    const ready = resolver.logs.find((l) => l.event === 'resolver.listening');
    assert.equal(ready?.metricsListen, `127.0.0.1:${metricsPort}`);
    const health = await get(`http://127.0.0.1:${metricsPort}/healthz`);
    assert.deepEqual(health, { status: 200, body: 'ok serving\n' });
    assert.equal((await get(`http://127.0.0.1:${metricsPort}/other`)).status, 404);
    const other = otherAddress();
    if (other) assert.equal(await accepts(other, metricsPort), false, `metrics answer on ${other}`);
  });

  test('a bare port is loopback; a metrics address in use stops the start with a clear error', async () => {
    const bare = strata(['resolver', '--store', fx.store, '--metrics-listen', '9464', '--check-config', '--json']);
    assert.equal(bare.status, 0, bare.stderr);
    assert.equal((JSON.parse(bare.stdout) as { options: Record<string, { value: unknown }> }).options['metrics-listen'].value, '9464');
    await assert.rejects(startResolver({ store: fx.store, extra: ['--metrics-listen', `127.0.0.1:${metricsPort}`] }), /cannot serve metrics on 127\.0\.0\.1:\d+/);
  });
});
