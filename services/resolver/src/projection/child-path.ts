const SLASH = Buffer.from('/');

/**
 * What the paths of a directory's children start with: "/" for the root,
 * else the directory's canonical path and "/". A listing builds each child's
 * path from it with one copy (joinPath of the split parent and the name
 * gives the same bytes, with an array and a copy per component).
 */
export function childPrefix(canonDir: Buffer): Buffer {
  return canonDir.length === 1 ? SLASH : Buffer.concat([canonDir, SLASH]);
}

export function childPath(prefix: Buffer, name: Buffer): Buffer {
  return Buffer.concat([prefix, name], prefix.length + name.length);
}
