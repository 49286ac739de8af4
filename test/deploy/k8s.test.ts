import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '@strata/harness';
import {
  DEPLOY,
  K8S,
  commandLineProblems,
  containerfile,
  documentedCapabilities,
  entrypoint,
  envVarsRead,
  find,
  flagValue,
  k8sYamlFiles,
  loadYaml,
  manifests,
  parseYaml,
  podTemplate,
  type Container,
  type K8sObject,
  type PodTemplate,
  type Probe,
} from './deploy-files';

/** deploy/k8s and deploy/Containerfile, checked without a cluster or an image build. */

const all = manifests();
const workloads = all.flatMap((m) => {
  const t = podTemplate(m.doc);
  return t ? [{ doc: m.doc, template: t }] : [];
});

/** The containers that run the strata image (its entrypoint is bin/strata). */
function strataContainers(): { workload: K8sObject; container: Container }[] {
  return workloads.flatMap((w) => w.template.spec.containers.filter((c) => c.image === 'strata').map((container) => ({ workload: w.doc, container })));
}

function commandOf(c: Container): string[] {
  return [...(c.command ?? entrypoint()), ...(c.args ?? [])];
}

function probes(c: Container): [string, Probe][] {
  return (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).flatMap((k) => (c[k] ? [[k, c[k]] as [string, Probe]] : []));
}

function onlyContainer(t: PodTemplate): Container {
  assert.equal(t.spec.containers.length, 1);
  return t.spec.containers[0];
}

interface Kustomization {
  namespace?: string;
  resources?: string[];
  configMapGenerator?: { name: string; files?: string[] }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

const kustomization = loadYaml(path.join(K8S, 'kustomization.yaml'))[0] as Kustomization;

describe('deploy/k8s manifests', () => {
  test('every YAML file parses, and every object has an apiVersion, a kind and a name', () => {
    const files = k8sYamlFiles();
    assert.ok(files.length >= 5);
    for (const f of files) assert.ok(loadYaml(f).length > 0, `${f} is empty`);
    for (const { file, doc } of all) {
      assert.ok(doc.apiVersion && doc.kind && doc.metadata?.name, `${path.basename(file)}: ${JSON.stringify(doc).slice(0, 80)}`);
    }
  });

  test('kustomization.yaml lists every manifest, and everything it names exists', () => {
    const listed = [...(kustomization.resources ?? [])].sort();
    const present = k8sYamlFiles()
      .map((f) => path.basename(f))
      .filter((f) => f !== 'kustomization.yaml')
      .sort();
    assert.deepEqual(listed, present);
    for (const g of kustomization.configMapGenerator ?? []) for (const f of g.files ?? []) assert.ok(fs.existsSync(path.join(K8S, f)), f);
    assert.ok(kustomization.images?.some((i) => i.name === 'strata'));
  });

  test('the strata containers use only flags strata has and variables it reads', () => {
    const read = envVarsRead();
    const found = strataContainers();
    assert.ok(found.length >= 2);
    for (const { workload, container } of found) {
      const argv = commandOf(container);
      assert.equal(argv[0], entrypoint()[0]);
      assert.deepEqual(commandLineProblems(argv.slice(1)), [], `${workload.metadata?.name}: ${argv.join(' ')}`);
      for (const e of container.env ?? []) assert.ok(read.has(e.name), `${workload.metadata?.name} sets ${e.name}, which strata does not read`);
      for (const [kind, p] of probes(container)) {
        if (!p.exec) continue;
        const [bin, ...rest] = p.exec.command;
        if (bin === entrypoint()[0] || path.basename(bin) === 'strata') {
          assert.equal(bin, entrypoint()[0], `${kind} runs ${bin}`);
          assert.deepEqual(commandLineProblems(rest), [], `${kind}: ${p.exec.command.join(' ')}`);
        }
      }
    }
  });

  test('probes use the ports their containers open', () => {
    for (const w of workloads) {
      for (const c of w.template.spec.containers) {
        const ports = c.ports ?? [];
        for (const [kind, p] of probes(c)) {
          const port = p.grpc?.port ?? p.tcpSocket?.port ?? p.httpGet?.port;
          if (port === undefined) continue;
          const match = ports.some((cp) => cp.containerPort === port || (cp.name !== undefined && cp.name === port));
          assert.ok(match, `${w.doc.metadata?.name}/${c.name} ${kind} port ${String(port)} is none of ${JSON.stringify(ports)}`);
        }
      }
    }
  });

  test('the resolver is N replicas probed with grpc.health.v1 on the port of its --listen', () => {
    const d = find(all, 'Deployment', 'strata-resolver');
    assert.ok(((d.spec as { replicas: number }).replicas ?? 1) >= 2);
    const c = onlyContainer(podTemplate(d)!);
    const listen = flagValue(commandOf(c), '--listen');
    assert.ok(listen, 'the resolver container sets --listen');
    const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
    assert.equal(c.ports?.find((p) => p.name === 'grpc')?.containerPort, port);
    for (const kind of ['readinessProbe', 'livenessProbe'] as const) {
      assert.equal(c[kind]?.grpc?.port, port, `${kind} is a grpc probe on ${port}`);
      assert.equal(c[kind]?.grpc?.service ?? '', '', `${kind} asks about the whole server`);
    }
    // Liveness must not kill a resolver while it drains for --grace-ms (10 s).
    const live = c.livenessProbe as Probe & { periodSeconds?: number; failureThreshold?: number };
    assert.ok((live.periodSeconds ?? 10) * (live.failureThreshold ?? 3) > 10);
    assert.ok((podTemplate(d)!.spec.terminationGracePeriodSeconds ?? 30) > 10);
  });

  test('the resolver runs with exactly the capabilities docs/deployment.md gives the resolver unit', () => {
    const c = onlyContainer(podTemplate(find(all, 'Deployment', 'strata-resolver'))!);
    const documented = [...(documentedCapabilities().get('strata-resolver.service') ?? [])].map((x) => x.replace(/^CAP_/, '')).sort();
    assert.deepEqual([...(c.securityContext?.capabilities?.add ?? [])].sort(), documented);
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
    assert.notEqual(c.securityContext?.privileged, true);
  });

  test('the resolver reads the store at the path it is given, from the store claim', () => {
    const t = podTemplate(find(all, 'Deployment', 'strata-resolver'))!;
    const c = onlyContainer(t);
    const store = flagValue(commandOf(c), '--store');
    const mount = c.volumeMounts?.find((m) => m.mountPath === store);
    assert.ok(mount, `nothing is mounted at --store ${String(store)}`);
    const claim = t.spec.volumes?.find((v) => v.name === mount.name)?.persistentVolumeClaim?.claimName;
    assert.ok(claim);
    find(all, 'PersistentVolumeClaim', claim);
  });

  test('the agent DaemonSet has /dev/fuse, Bidirectional propagation and its socket directory on the host', () => {
    const ds = find(all, 'DaemonSet', 'strata-agent');
    const t = podTemplate(ds)!;
    const c = onlyContainer(t);
    const volume = (name: string) => t.spec.volumes?.find((v) => v.name === name);
    const fuse = c.volumeMounts?.find((m) => m.mountPath === '/dev/fuse');
    assert.ok(fuse, '/dev/fuse is mounted');
    assert.deepEqual(volume(fuse.name)?.hostPath, { path: '/dev/fuse', type: 'CharDevice' });
    const shared = c.volumeMounts?.filter((m) => m.mountPropagation === 'Bidirectional') ?? [];
    assert.equal(shared.length, 1);
    assert.ok(volume(shared[0].name)?.hostPath, 'the mount root is a host directory');
    // Kubernetes accepts Bidirectional only in a privileged container, which its namespace must admit.
    assert.equal(c.securityContext?.privileged, true);
    const ns = find(all, 'Namespace', kustomization.namespace ?? '');
    assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'privileged');
    const socket = flagValue(commandOf(c), '--socket');
    assert.ok(socket);
    const run = c.volumeMounts?.find((m) => m.mountPath === path.dirname(socket));
    assert.ok(run, `${path.dirname(socket)} is mounted`);
    assert.equal(volume(run.name)?.hostPath?.path, path.dirname(socket));
    assert.equal(c.livenessProbe, undefined, 'a liveness restart would unmount the node’s layers');
    assert.ok((t.spec.terminationGracePeriodSeconds ?? 30) >= 30);
  });

  test('the agent reaches the resolvers through their Service', () => {
    const c = onlyContainer(podTemplate(find(all, 'DaemonSet', 'strata-agent'))!);
    const addresses = (flagValue(commandOf(c), '--resolver') ?? '').split(',');
    assert.ok(addresses.length >= 1 && addresses[0] !== '');
    for (const a of addresses) {
      const [host, port] = a.split(':');
      const svc = find(all, 'Service', host).spec as { ports: { port: number; targetPort: string | number }[] };
      assert.ok(
        svc.ports.some((p) => p.port === Number(port)),
        `Service ${host} has no port ${port}`,
      );
    }
  });

  test('Service selectors match pod labels, and target ports are container ports', () => {
    const services = all.filter((m) => m.doc.kind === 'Service');
    assert.ok(services.length >= 2);
    for (const { doc } of services) {
      const spec = doc.spec as { selector: Record<string, string>; ports: { port: number; targetPort?: string | number }[] };
      const targets = workloads.filter((w) => Object.entries(spec.selector).every(([k, v]) => w.template.metadata?.labels?.[k] === v));
      assert.equal(targets.length, 1, `Service ${doc.metadata?.name} selects ${targets.length} workloads`);
      const selector = (targets[0].doc.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      for (const [k, v] of Object.entries(selector)) assert.equal(targets[0].template.metadata?.labels?.[k], v, 'the workload selects its own pods');
      const ports = targets[0].template.spec.containers.flatMap((c) => c.ports ?? []);
      for (const p of spec.ports) {
        const target = p.targetPort ?? p.port;
        assert.ok(
          ports.some((cp) => cp.containerPort === target || cp.name === target),
          `Service ${doc.metadata?.name} port ${p.port} → ${String(target)}`,
        );
      }
    }
  });

  test('every ConfigMap and claim a pod mounts is defined', () => {
    const configMaps = new Set([...(kustomization.configMapGenerator ?? []).map((g) => g.name), ...all.filter((m) => m.doc.kind === 'ConfigMap').map((m) => m.doc.metadata?.name)]);
    for (const w of workloads) {
      for (const v of w.template.spec.volumes ?? []) {
        if (v.configMap) assert.ok(configMaps.has(v.configMap.name), `ConfigMap ${v.configMap.name}`);
        if (v.persistentVolumeClaim) find(all, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
      }
      for (const c of w.template.spec.containers) {
        for (const m of c.volumeMounts ?? []) assert.ok(w.template.spec.volumes?.some((v) => v.name === m.name), `${c.name} mounts unknown volume ${m.name}`);
      }
    }
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  test('kubectl kustomize renders it: the image set, the generated ConfigMap referenced', { skip: kubectl.status === 0 ? false : 'kubectl is not installed' }, () => {
    const r = spawnSync('kubectl', ['kustomize', K8S], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const objects = parseYaml(r.stdout, 'kubectl kustomize deploy/k8s') as K8sObject[];
    const names = new Set(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata?.name));
    const image = kustomization.images!.find((i) => i.name === 'strata')!;
    const expected = `${image.newName ?? 'strata'}:${image.newTag}`;
    let strataPods = 0;
    for (const o of objects) {
      const t = podTemplate(o);
      if (!t) continue;
      for (const v of t.spec.volumes ?? []) if (v.configMap) assert.ok(names.has(v.configMap.name), `rendered ${o.metadata?.name} mounts ${v.configMap.name}`);
      for (const c of t.spec.containers) {
        assert.notEqual(c.image, 'strata', 'the image was rewritten');
        if (c.image === expected) strataPods++;
      }
    }
    assert.equal(strataPods, strataContainers().length);
    assert.ok(objects.every((o) => o.kind === 'Namespace' || (o.metadata as { namespace?: string }).namespace === kustomization.namespace));
  });
});

describe('deploy/Containerfile', () => {
  const steps = containerfile();

  test('builds on node:20-bookworm-slim and installs the runtime Debian packages', () => {
    const from = steps.filter((s) => s.op === 'FROM').map((s) => s.rest.split(/\s+/)[0]);
    assert.ok(from.length >= 1);
    assert.deepEqual([...new Set(from)], ['node:20-bookworm-slim']);
    const lastStage = steps.slice(steps.map((s) => s.op).lastIndexOf('FROM'));
    const installed = lastStage
      .filter((s) => s.op === 'RUN')
      .flatMap((s) => [...s.rest.matchAll(/apt-get install ((?:-\S+\s+)*)([^&;]+)/g)].flatMap((m) => m[2].trim().split(/\s+/)));
    for (const p of ['fuse3', 'attr']) assert.ok(installed.includes(p), `the runtime image lacks ${p} (${installed.join(' ')})`);
  });

  test('installs with npm ci, builds, and its entrypoint is the tree install.sh puts at its --prefix', () => {
    const runs = steps.filter((s) => s.op === 'RUN').map((s) => s.rest);
    assert.ok(runs.some((r) => /\bnpm ci\b/.test(r)));
    assert.ok(runs.some((r) => /\bnx run-many -t build\b/.test(r)));
    const install = runs.find((r) => r.includes('deploy/install.sh'));
    assert.ok(install);
    const prefix = flagValue(install.split(/\s+/), '--prefix');
    assert.deepEqual(entrypoint(), [`${prefix}/bin/strata`]);
  });

  test('copies only what exists in the repository', () => {
    for (const s of steps.filter((x) => x.op === 'COPY' && !x.rest.startsWith('--from'))) {
      const parts = s.rest.split(/\s+/);
      for (const src of parts.slice(0, -1)) assert.ok(fs.existsSync(path.join(REPO, src)), `COPY ${src}`);
    }
    assert.ok(fs.existsSync(path.join(DEPLOY, 'Containerfile.dockerignore')));
  });
});
