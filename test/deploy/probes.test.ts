import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { STRATA_BIN, freePort, strata } from '@strata/harness';
import { CertDir } from '../support/certs';
import { makeStore, type StoreFixture } from '../support/store-fixture';
import { find, manifests, podTemplate, readConfig, rewrittenConfig, type Probe } from './deploy-files';

/**
 * Issue 23 items 4 and 5: the resolver as deploy/k8s runs it — its
 * ConfigMap's file (mutual TLS on), nothing else on the command line —
 * probed the way the manifest probes it. The kubelet's gRPC probe speaks
 * plaintext, which a TLS resolver cannot answer; /healthz on the metrics
 * listener is plain HTTP and can.
 */

const READY_MS = 20_000;

interface Running {
  child: ChildProcess;
  lines: string[];
  ready: Record<string, unknown>;
  stop(): Promise<void>;
}

/** `strata resolver --config FILE` and nothing else, as the manifest's args are; resolves on resolver.listening. */
async function startFromConfig(file: string): Promise<Running> {
  const child = spawn(process.execPath, [STRATA_BIN, 'resolver', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within ${READY_MS} ms:\n${lines.join('\n')}`)), READY_MS);
    readline.createInterface({ input: child.stderr! }).on('line', (line) => {
      lines.push(line);
      try {
        const v = JSON.parse(line) as Record<string, unknown>;
        if (v.event === 'resolver.listening') {
          clearTimeout(timer);
          resolve(v);
        }
      } catch {
        // Not a log line.
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`exited before it was ready:\n${lines.join('\n')}`));
    });
  });
  return {
    child,
    lines,
    ready,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 5 s`)));
    req.on('error', reject);
  });
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, timeout: 2000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

describe('a mutual-TLS resolver from the Kubernetes configuration, probed as the manifest probes it', () => {
  let certs: CertDir;
  let fx: StoreFixture;
  let work: string;
  let resolver: Running;
  let metricsPort = 0;
  const container = podTemplate(find(manifests(), 'Deployment', 'strata-resolver'))!.spec.containers[0];

  before(async () => {
    certs = new CertDir('strata-probe-');
    certs.makeCa('ca');
    certs.makeLeaf('server', 'ca', 'resolver', 100, 'IP:127.0.0.1');
    certs.makeLeaf('ops', 'ca', 'ops', 101);
    // The Secret's keys, as the manifest mounts them.
    fs.copyFileSync(certs.file('server.crt'), certs.file('tls.crt'));
    fs.copyFileSync(certs.file('server.key'), certs.file('tls.key'));
    fx = await makeStore([{ entries: [{ type: 'file', path: '/etc/hostname', content: 'probed\n' }] }]);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-probe-config-'));
    metricsPort = await freePort();
    // Only where things are on this host changes: addresses on loopback, the store and the Secret's folder.
    const file = rewrittenConfig('resolver', 'k8s', work, {
      '/srv/strata/store': fx.store,
      '/etc/strata/tls': certs.dir,
      '0.0.0.0:7400': '127.0.0.1:0',
      '0.0.0.0:9464': `127.0.0.1:${metricsPort}`,
    });
    resolver = await startFromConfig(file);
  });

  after(async () => {
    await resolver?.stop();
    fx?.cleanup();
    certs?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('it serves mutual TLS, from the file alone (nothing shadowed), one audit file for this host', () => {
    assert.equal(resolver.ready.tls, 'mutual');
    assert.equal(resolver.lines.filter((l) => l.includes('"config.shadowed"')).length, 0);
    assert.ok(readConfig('resolver', 'k8s')['audit-log']);
    assert.ok(fs.existsSync(path.join(fx.store, '.strata', 'audit', `${os.hostname()}.log`)));
  });

  test('the readiness and startup probes (httpGet /healthz on the metrics port) answer 200; the liveness probe (TCP on grpc) connects', async () => {
    for (const kind of ['startupProbe', 'readinessProbe'] as const) {
      const probe = container[kind] as Probe;
      assert.ok(probe.httpGet, `${kind} is an HTTP probe`);
      const res = await get(`http://127.0.0.1:${metricsPort}${probe.httpGet.path ?? '/'}`);
      assert.equal(res.status, 200, `${kind}: ${res.body}`);
      assert.equal(res.body, 'ok serving\n');
    }
    assert.ok((container.livenessProbe as Probe).tcpSocket);
    assert.ok(await connects(resolver.ready.port as number));
  });

  test('the API itself needs a client certificate: a client with one is served, the way an agent or operator reaches it', () => {
    const ok = strata(['--resolver', `127.0.0.1:${String(resolver.ready.port)}`, ...certs.cliArgs('ca', 'ops'), '--timeout', '5', 'version']);
    assert.equal(ok.status, 0, ok.stderr);
    const none = strata(['--resolver', `127.0.0.1:${String(resolver.ready.port)}`, '--timeout', '5', 'version']);
    assert.equal(none.status, 1);
  });

  test('draining (SIGTERM): /healthz says 503 before the process is gone, so the pod leaves the Services first', async () => {
    // A Session stream keeps it draining long enough to ask (calls in flight get --grace-ms).
    const probe = container.readinessProbe as Probe;
    const url = `http://127.0.0.1:${metricsPort}${probe.httpGet?.path ?? '/'}`;
    assert.equal((await get(url)).status, 200);
    resolver.child.kill('SIGTERM');
    let seen: number | undefined;
    const end = Date.now() + 5000;
    while (Date.now() < end && resolver.child.exitCode === null) {
      try {
        const r = await get(url);
        if (r.status === 503) {
          seen = r.status;
          assert.match(r.body, /draining/);
          break;
        }
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    // Without calls in flight the drain may end before a request lands: then the listener is gone, which a probe reads as not ready too.
    if (seen === undefined) assert.equal(await get(url).then(() => 'answered', () => 'refused'), 'refused');
  });
});
