/** What the agent knows of a layer of a mounted chain (the catalog's Layer has these and more). */
export interface ChainLayer {
  readonly layerId: number;
  readonly generation: number;
  readonly createTimeMs: number;
}

/** A file's attributes as the resolver reports them (the protocol's Attr has these and more). */
export interface FileAttrs {
  readonly ino: number;
  readonly size: number;
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  readonly ctimeSec: number;
  readonly ctimeNsec: number;
}

/**
 * What names a chain's bytes across agent processes: every layer's id and
 * generation (bumped by every update, of the layer or of its base link),
 * with its creation time so that a catalog rebuilt from scratch, whose ids
 * start over, never matches what the old one filled.
 */
export function chainIdentity(chain: readonly ChainLayer[]): string {
  return chain.map((l) => `${l.layerId}g${l.generation}t${l.createTimeMs}`).join('/');
}

/** The attributes kept with a cached file, so a later process can tell the file is still the one it filled. */
export function sameFile(a: FileAttrs, b: FileAttrs): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeSec === b.mtimeSec && a.mtimeNsec === b.mtimeNsec && a.ctimeSec === b.ctimeSec && a.ctimeNsec === b.ctimeNsec;
}

/** Only the fields compared (a full Attr carries atime, which changes on every read). */
export function attrsOf(a: FileAttrs): FileAttrs {
  return { ino: a.ino, size: a.size, mtimeSec: a.mtimeSec, mtimeNsec: a.mtimeNsec, ctimeSec: a.ctimeSec, ctimeNsec: a.ctimeNsec };
}
