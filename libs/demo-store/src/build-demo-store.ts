import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Catalog, Layer } from '@strata/layers';

type Files = Record<string, string>;

/**
 * Layer contents in OCI spelling (".wh.<name>" whiteouts, ".wh..wh..opq"
 * opaque markers), which any user can write: the kernel's spelling needs
 * mknod and trusted xattrs, that is root.
 */
const BASE: Files = {
  'etc/hostname': 'demo-base\n',
  'etc/os-release': 'NAME="strata demo"\nVERSION_ID="1"\n',
  'usr/bin/tool': '#!/bin/sh\necho "tool v1"\n',
  'var/log/boot.log': 'booted\n',
  'home/user/notes.txt': 'written in the base image\n',
  'opt/legacy/a.conf': 'a=1\n',
  'opt/legacy/b.conf': 'b=1\n',
};
const SNAP1: Files = {
  'etc/hostname': 'demo-snapshot-1\n',
  'home/user/todo.txt': 'added by snapshot 1\n',
  'var/log/.wh.boot.log': '',
};
const SNAP2: Files = {
  'etc/motd': 'hello from snapshot 2\n',
  'opt/legacy/.wh..wh..opq': '',
  'opt/legacy/c.conf': 'c=2 (the directory is opaque: a.conf and b.conf are gone)\n',
  'usr/bin/tool': '#!/bin/sh\necho "tool v2"\n',
};

async function writeFiles(root: string, files: Files): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, content, { mode: rel.startsWith('usr/bin/') ? 0o755 : 0o644 });
  }
}

export interface DemoStore {
  store: string;
  base: Layer;
  snapshot1: Layer;
  snapshot2: Layer;
}

/**
 * Creates (or reuses) the demo store: layers named demo-base, demo-snap1 and
 * demo-snap2. Idempotent, so `npm start` can run again on the same folder.
 */
export async function buildDemoStore(store: string): Promise<DemoStore> {
  await fs.mkdir(store, { recursive: true });
  const catalog = new Catalog(store);
  await catalog.init();
  const ensure = async (name: string, dir: string, files: Files, base?: Layer): Promise<Layer> => {
    const existing = (await catalog.list()).layers.find((l) => l.name === name);
    if (existing) return existing;
    await writeFiles(path.join(store, dir), files);
    return catalog.create({
      source: `dir:${dir}`,
      layerType: base ? 'snapshot' : 'base',
      name,
      ...(base ? { base: { id: base.layerId } } : {}),
    });
  };
  const base = await ensure('demo-base', 'layers/base', BASE);
  const snapshot1 = await ensure('demo-snap1', 'layers/snap1', SNAP1, base);
  const snapshot2 = await ensure('demo-snap2', 'layers/snap2', SNAP2, snapshot1);
  return { store, base, snapshot1, snapshot2 };
}
