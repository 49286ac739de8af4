import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metadata, credentials } from '@grpc/grpc-js';
import { ProjectionServiceClient, layerRefToProto } from '@strata/protocol';
import { HAVE_REDIS, canMountFuse, forceUnmount, freePort, startAgent, startRedis, startResolver, waitFor, type AgentProcess, type RedisProcess, type ResolverProcess } from '@strata/harness';
import { startOtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver';
import { makeStore, type StoreFixture } from '../support/store-fixture';

const skip = !canMountFuse() ? 'needs root and /dev/fuse' : !HAVE_REDIS ? 'needs redis-server' : false;

describe('OpenTelemetry across agent, resolver and Redis', { skip }, () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let fx: StoreFixture;
  let redis: RedisProcess;
  let resolver: ResolverProcess;
  let agent: AgentProcess;
  let mnt: string;
  const ports = { resolver: 0, agent: 0 };
  let resolverPort = 0;
  let env: Record<string, string> = {};

  before(async () => {
    receiver = await startOtlpReceiver();
    fx = await makeStore([
      { entries: [{ type: 'file', path: '/etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' }, { type: 'file', path: '/data/blob', content: randomBytes(300_000) }] },
      { entries: [{ type: 'file', path: '/etc/hostname', content: 'traced\n' }] },
    ]);
    redis = await startRedis();
    env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'always_on',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_METRIC_EXPORT_INTERVAL: '500',
    };
    ports.resolver = await freePort();
    ports.agent = await freePort();
    resolverPort = await freePort();
    resolver = await startResolver({ store: fx.store, redis: redis.url, env, port: resolverPort, extra: ['--metrics-port', String(ports.resolver)] });
    agent = await startAgent({ resolver: resolver.address, env, extra: ['--metrics-port', String(ports.agent), '--prefetch-entries', '0'] });
    mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-otel-'));
    agent.mount('l1', mnt);
  });

  after(async () => {
    await agent?.stop();
    forceUnmount(mnt);
    fs.rmSync(mnt, { recursive: true, force: true });
    await resolver?.stop();
    await redis?.stop();
    await receiver?.close();
    fx?.cleanup();
  });

  const inTrace = (traceId: string): ReceivedSpan[] => receiver.spans.filter((s) => s.traceId === traceId);

  test('one trace links the agent\'s read, the resolver\'s Session request, Redis and the store read', async () => {
    // The agent learns the file's attributes; the resolver caches its record in-process and in Redis.
    assert.equal(fs.statSync(path.join(mnt, 'data/blob')).size, 300_000);
    // A restarted (or another) resolver has only Redis: the read's lookup goes there, the data to the store.
    await resolver.stop();
    resolver = await startResolver({ store: fx.store, redis: redis.url, env, port: resolverPort, extra: ['--metrics-port', String(ports.resolver)] });
    assert.equal(fs.readFileSync(path.join(mnt, 'data/blob')).length, 300_000);
    const trace = await waitFor(
      'a read traced from the agent to Redis and the store',
      () => {
        for (const read of receiver.spans.filter((s) => s.service === 'strata-agent' && s.name === 'fuse.read')) {
          const spans = inTrace(read.traceId);
          const server = spans.find((s) => s.service === 'strata-resolver' && s.name === 'Session.read' && s.parentSpanId === read.spanId);
          if (!server) continue;
          const redisSpan = spans.find((s) => s.service === 'strata-resolver' && s.name === 'redis GET' && s.parentSpanId === server.spanId);
          const store = spans.find((s) => s.service === 'strata-resolver' && s.name === 'store.read' && s.parentSpanId === server.spanId);
          if (redisSpan && store) return { read, server, redisSpan, store };
        }
        return undefined;
      },
      15_000,
    );
    assert.equal(trace.read.attributes['strata.op'], 'read');
    assert.equal(trace.read.attributes['strata.path'], '/data/blob');
    assert.equal(trace.read.attributes['strata.layer'], fx.layers[1].layerId);
    assert.equal(trace.redisSpan.attributes['db.system.name'], 'redis');
  });

  test('a unary call joins the caller\'s trace', async () => {
    const traceId = randomBytes(16).toString('hex');
    const parent = randomBytes(8).toString('hex');
    const client = new ProjectionServiceClient(resolver.address, credentials.createInsecure());
    const md = new Metadata();
    md.set('traceparent', `00-${traceId}-${parent}-01`);
    await new Promise<void>((resolve, reject) =>
      client.stat({ layer: layerRefToProto({ id: fx.layers[1].layerId }), path: Buffer.from('/etc/hostname') }, md, (err) => (err ? reject(err) : resolve())),
    );
    client.close();
    const span = await waitFor('the resolver span in the caller\'s trace', () => inTrace(traceId).find((s) => s.name === 'Stat'), 10_000);
    assert.equal(span.parentSpanId, parent);
    assert.equal(span.service, 'strata-resolver');
  });

  test('log lines written inside a traced operation carry its trace id', async () => {
    assert.throws(() => fs.statSync(path.join(mnt, 'no-such-file')), /ENOENT/);
    const line = await waitFor('the failed lookup logged', () => agent.logs.find((l) => l.event === 'fuse.op.failed' && l.path === '/no-such-file'), 10_000);
    assert.match(String(line.trace_id), /^[0-9a-f]{32}$/);
    const resolverLine = await waitFor('the resolver side logged', () => resolver.logs.find((l) => l.event === 'request.failed' && l.trace_id === line.trace_id), 10_000);
    assert.equal(resolverLine.errno, 'ENOENT');
    await waitFor('the same trace exported', () => inTrace(String(line.trace_id)).find((s) => s.name === 'fuse.lookup'), 10_000);
  });

  test('histograms and counters reach the collector and the Prometheus endpoints', async () => {
    fs.readFileSync(path.join(mnt, 'etc/passwd'));
    const hist = (service: string, name: string): number =>
      receiver.metrics.filter((m) => m.service === service && m.name === name).flatMap((m) => m.points).reduce((n, p) => Math.max(n, p.value), 0);
    await waitFor('FUSE op latency points', () => (hist('strata-agent', 'strata.fuse.op.duration') > 0 ? true : undefined), 10_000);
    await waitFor('resolver latency points', () => (hist('strata-resolver', 'strata.resolver.request.duration') > 0 ? true : undefined), 10_000);
    const tiers = new Set(receiver.metrics.filter((m) => m.name === 'strata.cache.requests').flatMap((m) => m.points.map((p) => `${p.attributes.tier}:${p.attributes.result}`)));
    for (const t of ['agent:hit', 'agent:miss', 'in-process:hit', 'in-process:miss', 'redis:miss']) assert.ok(tiers.has(t), `${t} in ${[...tiers].join(', ')}`);
    const prom = async (port: number): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const agentText = await prom(ports.agent);
    assert.match(agentText, /strata_fuse_op_duration\w*_bucket\{[^}]*op="read"/);
    assert.match(agentText, /strata_fuse_bytes_read\w*\{?[^\n]* [1-9]/);
    const resolverText = await prom(ports.resolver);
    assert.match(resolverText, /strata_resolver_request_duration\w*_count\{[^}]*method="Session.read"[^}]*\} [1-9]/);
    assert.match(resolverText, /strata_resolver_sessions\{?[^\n]* [1-9]/);
  });
});
