import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog, type Layer } from '@strata/layers';
import { changeVmDisk, makeVmDisk, toQcow2, type Files, type GuestChanges } from './vm-disk';

/** The VM's root filesystem when it was installed. */
const BASE: Files = {
  'etc/hostname': 'demo-vm\n',
  'etc/os-release': 'NAME="strata demo"\nVERSION_ID="1"\n',
  'etc/ssh/sshd_config': 'PermitRootLogin yes\nPasswordAuthentication yes\n',
  'usr/bin/tool': '#!/bin/sh\necho "tool v1"\n',
  'var/log/boot.log': 'booted\n',
  'home/user/notes.txt': 'written when the VM was installed\n',
  'opt/legacy/a.conf': 'a=1\n',
  'opt/legacy/b.conf': 'b=1\n',
};

/** What the running VM changed before its snapshot was taken. */
const SNAPSHOT: GuestChanges = {
  write: {
    'etc/hostname': 'demo-vm-snapshot-1\n',
    'etc/motd': 'hello from the running VM\n',
    'home/user/todo.txt': 'added while the VM ran\n',
    'usr/bin/tool': '#!/bin/sh\necho "tool v2"\n',
  },
  remove: ['var/log/boot.log'],
};

/**
 * A configuration fix laid over the snapshot as a `dir:` overlay (OCI
 * spelling, which any user can write): sshd hardened, a legacy file hidden.
 */
const FIX: Files = {
  'etc/ssh/sshd_config': 'PermitRootLogin no\nPasswordAuthentication no\n',
  'opt/legacy/.wh.b.conf': '',
};

async function writeFiles(root: string, files: Files): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, content);
  }
}

export interface DemoStore {
  store: string;
  /** The VM's disk as installed: qcow2:vm/base.qcow2#2. */
  base: Layer;
  /** Its snapshot: qcow2:vm/snapshot-1.qcow2#2, backed by base.qcow2. */
  snapshot: Layer;
  /** The dir: overlay with the configuration fix, over the snapshot. */
  fixed: Layer;
}

/**
 * Creates (or reuses) the demo store: a small VM disk (GPT, ext4 root in
 * partition 2) as a qcow2 base image and a qcow2 snapshot holding only what
 * the guest changed, and a `dir:` overlay of one configuration fix; layers
 * demo-base, demo-snap1 and demo-fixed. Idempotent, so `npm start` can run
 * again on the same folder.
 */
export async function buildDemoStore(store: string): Promise<DemoStore> {
  await fs.mkdir(store, { recursive: true });
  const catalog = new Catalog(store);
  await catalog.init();
  const existing = async (name: string): Promise<Layer | undefined> => (await catalog.list()).layers.find((l) => l.name === name);
  const vm = path.join(store, 'vm');
  if (!(await existing('demo-base')) || !(await existing('demo-snap1'))) {
    await fs.mkdir(vm, { recursive: true });
    const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-demo-disk-'));
    try {
      const raw = path.join(scratch, 'disk.raw');
      await makeVmDisk(raw, 64, BASE);
      toQcow2(raw, vm, 'base.qcow2');
      await changeVmDisk(raw, SNAPSHOT);
      toQcow2(raw, vm, 'snapshot-1.qcow2', 'base.qcow2');
    } finally {
      await fs.rm(scratch, { recursive: true, force: true });
    }
  }
  const base = (await existing('demo-base')) ?? (await catalog.create({ source: 'qcow2:vm/base.qcow2#2', layerType: 'base', name: 'demo-base' }));
  const snapshot =
    (await existing('demo-snap1')) ??
    (await catalog.create({ source: 'qcow2:vm/snapshot-1.qcow2#2', layerType: 'snapshot', name: 'demo-snap1', base: { id: base.layerId } }));
  let fixed = await existing('demo-fixed');
  if (!fixed) {
    await writeFiles(path.join(store, 'overlays/fix'), FIX);
    fixed = await catalog.create({ source: 'dir:overlays/fix', layerType: 'overlay', name: 'demo-fixed', base: { id: snapshot.layerId } });
  }
  return { store, base, snapshot, fixed };
}
