import { Attr, attrFromStats } from './attr';
import type { LayerObject, SourceStat } from './source/layer-source';

/**
 * A merged directory: the layers' directories that make it up, topmost
 * first, already cut at the first opaque one. Metadata comes from the topmost.
 */
export interface DirNode {
  kind: 'dir';
  dirs: LayerObject[];
  st: SourceStat;
}

/** Anything that is not a directory: supplied by exactly one object of one layer. */
export interface LeafNode {
  kind: 'leaf';
  obj: LayerObject;
  st: SourceStat;
}

export type Node = DirNode | LeafNode;

export function attrOf(node: Node): Attr {
  return attrFromStats(node.st, node.kind === 'dir' && node.dirs.length > 1);
}

/** The object whose data and xattrs the entry shows. */
export function supplierOf(node: Node): LayerObject {
  return node.kind === 'dir' ? node.dirs[0] : node.obj;
}
