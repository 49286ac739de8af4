import { StrataError, isStrataError } from '@strata/errors';
import { isDirStat } from './attr';
import { DirNode, Node } from './node';
import { isOpaqueDir, isOpaqueMarker, isWhiteoutDevice, isWhiteoutName, whitedOutName } from './overlay-rules';
import type { LayerObject, SourceDirent } from './source/layer-source';

/** What the layers' listings decided about one name. */
interface Candidate {
  name: Buffer;
  /** Layers (indices into the merged directory's dirs) that hold it, topmost first; empty when the topmost mention is a whiteout. */
  layers: number[];
  winnerIsDir: boolean;
  /** No lower layer can change the answer any more. */
  closed: boolean;
}

/**
 * A visible name with the node a lookup of it gives, or the error that
 * lookup fails with: an entry whose object cannot be read is still listed
 * (as the kernel's readdir lists it), only its attributes are missing.
 */
export type MergedEntry = { name: Buffer; node: Node; error?: undefined } | { name: Buffer; node?: undefined; error: StrataError };

/** Names looked up at once again, one by one, when a batch lookup failed. */
const SINGLE_LOOKUPS = 16;

function key(name: Buffer): string {
  return name.toString('latin1');
}

interface Classified {
  isDir: boolean;
  whiteout: boolean;
}
const A_DIR: Classified = { isDir: true, whiteout: false };
const NOT_A_DIR: Classified = { isDir: false, whiteout: false };

/** What the listing alone says of an entry's type, or undefined when only its object can tell (classify). */
function classifiedByListing(e: SourceDirent): Classified | undefined {
  if (e.type === 'dir') return A_DIR;
  if (e.type !== 'char' && e.type !== 'unknown') return NOT_A_DIR;
  return undefined;
}

/** Type of an entry as a lookup would say, asking for the object only when the listing cannot tell. */
async function classify(dir: LayerObject, e: SourceDirent): Promise<Classified> {
  const known = classifiedByListing(e);
  if (known) return known;
  // Character devices (maybe a whiteout) and listings without types.
  let obj: LayerObject | undefined;
  try {
    obj = await dir.layer.lookup(dir, e.name);
  } catch {
    // An unreadable object hides nothing below it: the merge lists it as an error entry.
    return { isDir: false, whiteout: false };
  }
  if (!obj) return { isDir: false, whiteout: true };
  return { isDir: isDirStat(obj.st), whiteout: dir.layer.overlayRules && isWhiteoutDevice(obj.st) };
}

/** The names of every layer's directory and what they say together, before any object is looked up. */
async function candidates(dirs: LayerObject[]): Promise<Candidate[]> {
  const listings = await Promise.all(dirs.map((d) => d.layer.list(d)));
  const byName = new Map<string, Candidate>();
  for (let layer = 0; layer < dirs.length; layer++) {
    const rules = dirs[layer].layer.overlayRules;
    const here = new Set<string>();
    const whiteouts: Buffer[] = [];
    for (const e of listings[layer]) {
      if (rules && isWhiteoutName(e.name)) {
        if (!isOpaqueMarker(e.name)) whiteouts.push(whitedOutName(e.name));
        continue;
      }
      const k = key(e.name);
      here.add(k);
      const cand = byName.get(k);
      if (cand?.closed) continue;
      // Most entries' types are in the listing: no wait for them.
      const c = classifiedByListing(e) ?? (await classify(dirs[layer], e));
      if (!cand) {
        byName.set(k, { name: e.name, layers: c.whiteout ? [] : [layer], winnerIsDir: c.isDir, closed: c.whiteout || !c.isDir });
      } else if (c.isDir) {
        // An open candidate is a directory from above; a directory continues it (opaque ones are cut later).
        cand.layers.push(layer);
      } else {
        cand.closed = true;
      }
    }
    // OCI whiteouts act on lower layers only: a real entry of the same name in
    // this layer wins over its own whiteout.
    for (const w of whiteouts) {
      const k = key(w);
      if (here.has(k)) continue;
      const cand = byName.get(k);
      if (!cand) byName.set(k, { name: w, layers: [], winnerIsDir: false, closed: true });
      else cand.closed = true;
    }
  }
  const visible = [...byName.values()].filter((c) => c.layers.length > 0);
  visible.sort((a, b) => Buffer.compare(a.name, b.name));
  return visible;
}

/**
 * Lists a merged directory the way overlayfs does: top layer first, a
 * whiteout or a non-directory ends the merge of a name, a directory merges
 * with the directories of the same name below until one is opaque. Returns
 * the visible entries sorted bytewise, each with the node a lookup of it
 * would give, so callers (readdir with attributes, walk, diff) never look a
 * name up twice.
 */
export async function mergeDir(dir: DirNode): Promise<MergedEntry[]> {
  const visible = await candidates(dir.dirs);
  // The supplying objects, one batch per layer.
  const tops: Found[] = new Array(visible.length);
  const byLayer: number[][] = dir.dirs.map(() => []);
  visible.forEach((c, i) => byLayer[c.layers[0]].push(i));
  for (let layer = 0; layer < dir.dirs.length; layer++) {
    const mine = byLayer[layer];
    if (mine.length === 0) continue;
    const found = await lookupEach(dir.dirs[layer], mine.map((i) => visible[i].name));
    mine.forEach((i, j) => (tops[i] = found[j]));
  }
  const out: MergedEntry[] = [];
  for (let i = 0; i < visible.length; i++) {
    const c = visible[i];
    const top = tops[i];
    // An entry that disappeared between listing and lookup (a LIVE layer) is dropped.
    if (!top) continue;
    if (isStrataError(top)) {
      out.push({ name: c.name, error: top });
      continue;
    }
    if (!c.winnerIsDir || !isDirStat(top.st)) {
      out.push({ name: c.name, node: { kind: 'leaf', obj: top, st: top.st } });
      continue;
    }
    out.push({ name: c.name, node: { kind: 'dir', dirs: await stackOf(dir.dirs, c, top), st: top.st } });
  }
  return out;
}

/** What looking a listed name up gave: its object, nothing (gone since the listing), or the error of that one object. */
type Found = LayerObject | undefined | StrataError;

/**
 * The objects of many names of one layer directory. A batch lookup fails
 * whole when one object in it cannot be read; the names are then looked up
 * one by one so that the failure stays with the name it belongs to (sources
 * answer repeated lookups of one directory from the listing they just read).
 */
async function lookupEach(dir: LayerObject, names: Buffer[]): Promise<Found[]> {
  try {
    return await dir.layer.lookupMany(dir, names);
  } catch (err) {
    if (names.length === 1) return [StrataError.from(err)];
  }
  const out: Found[] = new Array(names.length);
  for (let i = 0; i < names.length; i += SINGLE_LOOKUPS) {
    const batch = names.slice(i, i + SINGLE_LOOKUPS).map(async (n) => {
      try {
        return (await dir.layer.lookupMany(dir, [n]))[0];
      } catch (err) {
        return StrataError.from(err);
      }
    });
    (await Promise.all(batch)).forEach((f, j) => (out[i + j] = f));
  }
  return out;
}

/** A merged child directory's layers, cut at the first opaque one. Only names that several layers hold get here. */
async function stackOf(parents: LayerObject[], c: Candidate, top: LayerObject): Promise<LayerObject[]> {
  const stack = [top];
  for (let k = 1; k < c.layers.length; k++) {
    if (await isOpaqueDir(stack[stack.length - 1])) break;
    const parent = parents[c.layers[k]];
    // A lower directory that cannot be read ends the merge there: the layers above still show.
    const obj = await parent.layer.lookup(parent, c.name).catch(() => undefined);
    if (!obj || !isDirStat(obj.st)) break;
    stack.push(obj);
  }
  return stack;
}
