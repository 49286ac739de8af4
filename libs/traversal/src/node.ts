import type { BigIntStats } from 'node:fs';
import { Attr, attrFromStats } from './attr';

/**
 * A merged directory: the real directories that make it up, topmost first,
 * already cut at the first opaque one. Metadata comes from the topmost.
 */
export interface DirNode {
  kind: 'dir';
  dirs: Buffer[];
  st: BigIntStats;
}

/** Anything that is not a directory: supplied by exactly one real object. */
export interface LeafNode {
  kind: 'leaf';
  real: Buffer;
  st: BigIntStats;
}

export type Node = DirNode | LeafNode;

export function attrOf(node: Node): Attr {
  return attrFromStats(node.st, node.kind === 'dir' && node.dirs.length > 1);
}

/** The real object whose data and xattrs the entry shows. */
export function realPathOf(node: Node): Buffer {
  return node.kind === 'dir' ? node.dirs[0] : node.real;
}
