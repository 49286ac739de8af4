import type { Tree } from './tree-snapshot';

/**
 * What a fuse-native mount can carry of a kernel tree: timestamps in
 * milliseconds and st_ino in 32 bits (fuse-native's stat array). Names and
 * link targets that are not UTF-8 cannot pass its string API at all.
 */
export function throughFuseNative(tree: Tree): Tree {
  const out: Tree = new Map();
  for (const [p, e] of tree) out.set(p, { ...e, mtimeNs: (e.mtimeNs / 1_000_000n) * 1_000_000n, ino: e.ino % 2 ** 32 });
  return out;
}

export function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}
