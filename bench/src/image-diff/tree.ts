/**
 * The generated guest tree and the change made to it, as plain data: what
 * disks.ts writes through the kernel, and from which the expected diff is
 * derived. Deterministic for a given size (a seeded generator), so disks
 * kept from an earlier run are described by the same plan.
 */

export type TreeEntry =
  | { type: 'dir'; path: string }
  | { type: 'file'; path: string; size: number; fill: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'hardlink'; path: string; target: string };

export type ChangeOp =
  | { op: 'rewrite'; path: string; size: number; fill: number }
  | { op: 'append'; path: string; size: number; fill: number }
  | { op: 'create'; path: string; size: number; fill: number }
  | { op: 'mkdir'; path: string }
  | { op: 'unlink'; path: string }
  | { op: 'rename'; from: string; to: string };

export type ChangeKind = 'added' | 'modified' | 'deleted';

export interface ExpectedChange {
  path: string;
  kind: ChangeKind;
}

export interface Tree {
  entries: TreeEntry[];
  /** Non-directory entries (files, symlinks, hard links): the "N files" of the benchmark. */
  files: number;
  dirs: number;
  dataBytes: number;
}

/** mulberry32: small, fast and the same on every machine. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const DIR_WORDS = ['etc', 'lib', 'share', 'doc', 'src', 'cache', 'conf.d', 'modules', 'locale', 'include', 'plugins', 'data', 'log', 'spool', 'man', 'python3'];
const EXTS = ['conf', 'txt', 'so', 'py', 'json', 'gz', 'html', 'h', 'mo', 'service', ''];

/** Mostly small files, a few larger ones, as in a distribution's /usr (mean about 8 KiB). */
function fileSize(r: () => number): number {
  const u = r();
  if (u < 0.1) return Math.floor(r() * 100);
  if (u < 0.65) return 100 + Math.floor(r() * 4_000);
  if (u < 0.95) return 4_096 + Math.floor(r() * 12_288);
  return 16_384 + Math.floor(r() * 114_688);
}

/** A non-zero byte, so file data is never mistaken for a hole or a zero cluster. */
const fillByte = (r: () => number): number => 1 + Math.floor(r() * 255);

/**
 * About `files` non-directory entries in nested directories of 10–30
 * entries each (about one in ten a subdirectory, half of the root's as
 * in / itself; filled breadth first),
 * with ~4% symlinks and ~2% hard links to files elsewhere in the tree.
 */
export function generateTree(files: number, seed = files): Tree {
  const r = prng(seed);
  const entries: TreeEntry[] = [];
  const regular: string[] = [];
  const queue: string[] = [''];
  let count = 0;
  let dirs = 0;
  let dataBytes = 0;
  while (count < files && queue.length > 0) {
    const dir = queue.shift()!;
    if (dir !== '') {
      entries.push({ type: 'dir', path: dir });
      dirs++;
    }
    const n = 10 + Math.floor(r() * 21);
    const here: string[] = [];
    for (let i = 0; i < n && count < files; i++) {
      const u = r();
      // The last entry of the only directory left to fill is a subdirectory, so the tree keeps growing.
      if (u < (dir === '' ? 0.5 : 0.1) || (i === n - 1 && queue.length === 0)) {
        // A subdirectory is written when its turn in the queue comes, so the tree stops with no empty ones.
        queue.push(`${dir}/${DIR_WORDS[Math.floor(r() * DIR_WORDS.length)]}-${i}`);
        continue;
      }
      const ext = EXTS[Math.floor(r() * EXTS.length)];
      const path = `${dir}/file-${String(i).padStart(2, '0')}${ext ? `.${ext}` : ''}`;
      count++;
      if (u < 0.14 && here.length > 0) {
        // Half relative to a sibling, half absolute (dangling inside this image, as many are).
        const target = r() < 0.5 ? here[Math.floor(r() * here.length)].slice(dir.length + 1) : `/usr/lib/x86_64-linux-gnu/lib${i}.so.${Math.floor(r() * 9)}`;
        entries.push({ type: 'symlink', path, target });
      } else if (u < 0.16 && regular.length > 0) {
        entries.push({ type: 'hardlink', path, target: regular[Math.floor(r() * regular.length)] });
      } else {
        const size = fileSize(r);
        entries.push({ type: 'file', path, size, fill: fillByte(r) });
        regular.push(path);
        here.push(path);
        dataBytes += size;
      }
    }
  }
  return { entries, files: count, dirs, dataBytes };
}

const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/'));

/**
 * The guest's change: 8 files rewritten in place with another size, 4
 * appended to, 4 new files in existing directories, 1 new directory with 3
 * files, 3 deleted, 1 renamed into another directory. Only files with one
 * link are touched, so no other path changes with them; directories are
 * not reported for their own mtime or size (diff's rules, after
 * containerd/continuity), so the parents of these files do not appear.
 */
export function planChange(tree: Tree, seed = tree.files + 1): { ops: ChangeOp[]; expected: ExpectedChange[] } {
  const r = prng(seed);
  const linked = new Set(tree.entries.flatMap((e) => (e.type === 'hardlink' ? [e.target] : [])));
  const candidates = tree.entries.flatMap((e) => (e.type === 'file' && !linked.has(e.path) ? [e] : []));
  const dirs = ['', ...tree.entries.flatMap((e) => (e.type === 'dir' ? [e.path] : []))];
  if (candidates.length < 32 || dirs.length < 2) throw new Error(`a tree of ${tree.files} files is too small for the change`);
  const taken = new Set<string>();
  const pick = (): Extract<TreeEntry, { type: 'file' }> => {
    for (;;) {
      const e = candidates[Math.floor(r() * candidates.length)];
      if (!taken.has(e.path)) {
        taken.add(e.path);
        return e;
      }
    }
  };
  const pickDir = (): string => dirs[Math.floor(r() * dirs.length)];
  const ops: ChangeOp[] = [];
  const expected: ExpectedChange[] = [];
  for (let i = 0; i < 8; i++) {
    const e = pick();
    const size = e.size > 2_000 ? Math.floor(e.size / 2) : e.size + 1 + Math.floor(r() * 6_000);
    ops.push({ op: 'rewrite', path: e.path, size, fill: fillByte(r) });
    expected.push({ path: e.path, kind: 'modified' });
  }
  for (let i = 0; i < 4; i++) {
    const e = pick();
    ops.push({ op: 'append', path: e.path, size: 1 + Math.floor(r() * 3_000), fill: fillByte(r) });
    expected.push({ path: e.path, kind: 'modified' });
  }
  for (let i = 0; i < 4; i++) {
    const path = `${pickDir()}/added-${i}.conf`;
    ops.push({ op: 'create', path, size: fileSize(r), fill: fillByte(r) });
    expected.push({ path, kind: 'added' });
  }
  const newDir = `${pickDir()}/added-dir`;
  ops.push({ op: 'mkdir', path: newDir });
  expected.push({ path: newDir, kind: 'added' });
  for (let i = 0; i < 3; i++) {
    const path = `${newDir}/new-${i}.txt`;
    ops.push({ op: 'create', path, size: fileSize(r), fill: fillByte(r) });
    expected.push({ path, kind: 'added' });
  }
  for (let i = 0; i < 3; i++) {
    const e = pick();
    ops.push({ op: 'unlink', path: e.path });
    expected.push({ path: e.path, kind: 'deleted' });
  }
  const moved = pick();
  let into = pickDir();
  while (into === parentOf(moved.path)) into = pickDir();
  const to = `${into}/renamed-${moved.path.slice(moved.path.lastIndexOf('/') + 1)}`;
  ops.push({ op: 'rename', from: moved.path, to });
  expected.push({ path: moved.path, kind: 'deleted' }, { path: to, kind: 'added' });
  return { ops, expected };
}
