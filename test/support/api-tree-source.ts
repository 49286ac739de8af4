import type { StrataClient } from '@strata/client';
import type { LayerRef } from '@strata/layers';
import type { WalkEntry } from '@strata/traversal';
import type { TreeSource } from './tree-snapshot';

/** The resolver's unary API shaped like a Projection, so the same tree reader and comparisons apply. */
export function apiTreeSource(client: StrataClient, ref: LayerRef): TreeSource {
  return {
    async *walk(path, options = {}): AsyncGenerator<WalkEntry[]> {
      for await (const batch of client.walk(ref, path, { maxDepth: options.maxDepth, includeLinkTargets: options.includeLinkTargets })) {
        yield batch.map((e) => ({ path: e.path, attr: e.attr!, ...(e.linkTarget.length > 0 ? { linkTarget: e.linkTarget } : {}) }));
      }
    },
    listXattr: (path) => client.listXattr(ref, path),
    getXattr: (path, name) => client.getXattr(ref, path, name),
    readlink: (path) => client.readLink(ref, path),
    async read(path, offset, length) {
      const parts: Buffer[] = [];
      for await (const chunk of client.read(ref, path, offset, length)) parts.push(chunk);
      const data = Buffer.concat(parts);
      const attr = await client.stat(ref, path);
      return { data, eof: offset + data.length >= attr.size };
    },
  };
}
