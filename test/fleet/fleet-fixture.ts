import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Catalog } from '@strata/layers';
import { writeStack, type FixtureEntry, type LayerSpec } from '@strata/harness';

const KiB = 1024;

/** Sizes from a fixed sequence (the same stack shape on every run; the bytes themselves are random). */
function sizes(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return 64 + (x % (12 * KiB));
  };
}

function file(p: string, size: number): FixtureEntry {
  return { type: 'file', path: p, content: Buffer.concat([Buffer.from(`${p}\n`), randomBytes(size)]) };
}

/**
 * Three `dir:` layers (bottom first) of a fleet's image: `dirs` directories
 * of `files` small files in the base, a 256 KiB file every 40 directories
 * and a 2.5 MiB one (several 1 MiB chunks, the last one partial) every 250;
 * a snapshot that whites out files and whole directories, rewrites files
 * (other sizes), adds files and symlinks; a top that makes every tenth
 * directory opaque, whites out some of the snapshot's additions and adds a
 * directory of its own.
 */
export function fleetStack(dirs: number, files: number): LayerSpec[] {
  const size = sizes(dirs * 7919 + files);
  const base: FixtureEntry[] = [{ type: 'file', path: '/etc/os-release', content: 'ID=strata-fleet\n', mode: 0o644 }];
  const snap: FixtureEntry[] = [{ type: 'file', path: '/etc/motd', content: 'snapshot\n', mode: 0o600 }];
  const top: FixtureEntry[] = [];
  for (let d = 0; d < dirs; d++) {
    const dir = `/tree/d${String(d).padStart(4, '0')}`;
    for (let f = 0; f < files; f++) base.push(file(`${dir}/f${f}`, size()));
    if (d % 40 === 0) base.push(file(`${dir}/big`, 256 * KiB));
    if (d % 250 === 0) base.push(file(`${dir}/huge`, 2.5 * 1024 * KiB));
    if (d % 7 === 0) base.push({ type: 'symlink', path: `${dir}/link`, target: 'f1' });
    if (d % 101 === 7) snap.push({ type: 'whiteout', path: dir });
    else {
      if (d % 3 === 0) snap.push({ type: 'whiteout', path: `${dir}/f0` });
      if (d % 3 === 1) snap.push(file(`${dir}/f1`, size()));
      snap.push(file(`${dir}/added`, size()));
      if (d % 13 === 0) snap.push({ type: 'dir', path: `${dir}/sub`, mode: 0o750 }, file(`${dir}/sub/deep`, size()));
      if (d % 11 === 3) top.push({ type: 'whiteout', path: `${dir}/added` });
    }
    if (d % 10 === 0) top.push({ type: 'dir', path: dir, opaque: true }, file(`${dir}/only`, size()));
  }
  for (let f = 0; f < 50; f++) top.push(file(`/fresh/n${f}`, size()));
  top.push({ type: 'symlink', path: '/fresh/etc', target: '../etc' });
  return [{ entries: base }, { entries: snap }, { entries: top }];
}

export interface FleetStore {
  store: string;
  /** Catalog names, bottom first. */
  layerNames: string[];
  /** The layer folders, top first, relative to `layersDir` (for the kernel's overlay). */
  lowerTopFirst: string[];
  layersDir: string;
}

/** Writes the stack into `store/layers/0..n-1` and registers it as base + snapshots `fleet0`, `fleet1`, ... */
export async function writeFleetStore(store: string, specs: LayerSpec[]): Promise<FleetStore> {
  const layersDir = path.join(store, 'layers');
  fs.mkdirSync(layersDir, { recursive: true });
  const lowerTopFirst = writeStack(layersDir, specs, 'trusted');
  const catalog = new Catalog(store);
  await catalog.init();
  let below: number | undefined;
  const layerNames: string[] = [];
  for (let i = 0; i < specs.length; i++) {
    const layer = await catalog.create({
      source: `dir:layers/${i}`,
      layerType: i === 0 ? 'base' : 'snapshot',
      base: below === undefined ? undefined : { id: below },
      name: `fleet${i}`,
    });
    below = layer.layerId;
    layerNames.push(layer.name);
  }
  return { store, layerNames, lowerTopFirst, layersDir };
}
