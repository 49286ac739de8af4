/**
 * Test support: FAT images made by mkfs.fat and filled by mtools from a
 * host tree, and mtools' own answers about them (the reference). Every
 * child process has a timeout; nothing here needs root or a mount.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TIMEOUT_MS = 60_000;
/** mtools: no geometry sanity check, UTF-8 names, times read as UTC (the vfat mapping's time zone). */
const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC' };

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', env: MTOOLS_ENV, stdio: ['ignore', 'pipe', 'pipe'], timeout: TIMEOUT_MS, maxBuffer: 64 << 20 });
}

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export const mtoolsSkipReason = (): string | false =>
  ['mkfs.fat', 'mcopy', 'mattrib', 'mdir', 'mdel', 'mmd'].every(hasTool) ? false : 'needs dosfstools (mkfs.fat) and mtools';

export async function makeTempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface ImageSpec {
  fatBits: 12 | 16 | 32;
  sizeMiB: number;
  sectorsPerCluster: number;
  label?: string;
  serial?: string;
}

export async function makeFatImage(dir: string, name: string, spec: ImageSpec): Promise<string> {
  const image = path.join(dir, name);
  const fh = await fsp.open(image, 'w');
  await fh.truncate(spec.sizeMiB * 1024 * 1024);
  await fh.close();
  const args = ['-F', String(spec.fatBits), '-s', String(spec.sectorsPerCluster)];
  if (spec.label) args.push('-n', spec.label);
  if (spec.serial) args.push('-i', spec.serial);
  run('mkfs.fat', [...args, image]);
  return image;
}

/** Copies every entry of `hostDir` into `target` (a '::/' path) of the image, keeping modification times. */
export async function copyIn(image: string, hostDir: string, target = '::/'): Promise<void> {
  const names = await fsp.readdir(hostDir);
  if (names.length === 0) return;
  run('mcopy', ['-s', '-m', '-i', image, ...names.map((n) => path.join(hostDir, n)), target]);
}

export function mtools(cmd: string, image: string, ...args: string[]): string {
  return run(cmd, ['-i', image, ...args]);
}

export interface ReferenceEntry {
  type: 'file' | 'dir';
  size: number;
  sha256?: string;
  mtimeMs: number;
}

/** The whole tree as mtools copies it out (`mcopy -s -m`): names, types, sizes, contents, modification times. */
export async function mtoolsTree(image: string, work: string): Promise<Map<string, ReferenceEntry>> {
  const out = await fsp.mkdtemp(path.join(work, 'out-'));
  run('mcopy', ['-s', '-m', '-n', '-i', image, '::/', out]);
  const tree = new Map<string, ReferenceEntry>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const d of await fsp.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, d.name);
      const r = `${rel}/${d.name}`;
      const st = await fsp.stat(p);
      if (d.isDirectory()) {
        tree.set(r, { type: 'dir', size: 0, mtimeMs: st.mtimeMs });
        await walk(p, r);
      } else {
        tree.set(r, { type: 'file', size: st.size, sha256: createHash('sha256').update(await fsp.readFile(p)).digest('hex'), mtimeMs: st.mtimeMs });
      }
    }
  };
  await walk(out, '');
  await fsp.rm(out, { recursive: true, force: true });
  return tree;
}

/** `mattrib -/`: path → attribute letters (A, S, H, R). */
export function mtoolsAttributes(image: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of mtools('mattrib', image, '-/', '::/').split('\n')) {
    const at = line.indexOf('::/');
    if (at < 0) continue;
    const p = line.slice(at + 2);
    if (p === '/') continue;
    map.set(p, line.slice(0, at).replace(/\s+/g, ''));
  }
  return map;
}

/** Free bytes as `mdir` sums them up. */
export function mtoolsFreeBytes(image: string): number {
  const m = /([\d ]+) bytes free/.exec(mtools('mdir', image, '::/'));
  if (!m?.[1]) throw new Error('mdir printed no free bytes');
  return Number(m[1].replace(/ /g, ''));
}

/** Deterministic bytes for a file of `size` bytes, different per `seed`. */
export function patternBytes(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
