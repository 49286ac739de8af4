import { Errno, StrataError, isStrataError } from '@strata/errors';
import { Attr, isLinkStat, isRegStat } from './attr';
import { mergeDir, type MergedEntry } from './merge';
import { Node, attrOf, supplierOf } from './node';
import { visibleXattrNames } from './overlay-rules';
import { joinPath, printable, splitPath, toPathBuffer } from './paths';
import type { Projection } from './projection';
import { sameObject, type DeltaHint, type LayerObject, type LayerSource } from './source/layer-source';
import { isDeviceMode } from '@strata/posix';

export type ChangeKind = 'added' | 'modified' | 'deleted';

export interface Change {
  path: Buffer;
  kind: ChangeKind;
  before?: Attr;
  after?: Attr;
  /**
   * The path could not be compared (or, for a directory, listed) because an
   * object is damaged: `kind` is what is known without it (added, deleted,
   * or 'modified' when both sides have the name), the attributes of the
   * unreadable side are absent, and the diff goes on with the next name.
   */
  error?: StrataError;
}

export interface DiffOptions {
  /**
   * Let sources say where they cannot differ (a qcow2 snapshot over its
   * base knows its changed clusters), so unchanged subtrees are skipped;
   * default true. false: the full walk of both trees, the reference the
   * shortcut must agree with.
   */
  deltas?: boolean;
}

/** What one diff knows while it walks. */
interface Walk {
  hints: readonly DeltaHint[];
}

const COMPARE_CHUNK = 1 << 20;
const NS = 1_000_000_000n;

/**
 * The changes that turn `from` into `to` under `path`, in walk order (depth
 * first, siblings sorted bytewise), following containerd/continuity:
 * a deleted subtree is reported once at its top, an added one entry by
 * entry; entries differ by type, mode, uid, gid, rdev, visible xattrs and,
 * for non-directories, size and mtime, with content compared only when both
 * mtimes have whole seconds (a copy that may have truncated them). Entries
 * supplied by the same object on both sides are equal without a look at
 * their content, and a directory made of the same layer directories on both
 * sides is skipped whole, which makes diffs between snapshots of one chain
 * cost what changed, not the size of the image. A source that knows where
 * it differs from a layer of the other side (DeltaHint) extends that to
 * objects it vouches for, e.g. every inode a qcow2 snapshot did not touch.
 */
export async function* diff(from: Projection, to: Projection, path: Buffer | string = '/', options: DiffOptions = {}): AsyncGenerator<Change[]> {
  const rootPath = toPathBuffer(path);
  const names = splitPath(rootPath);
  const [a, b] = await Promise.all([lookupOrUndefined(from, rootPath), lookupOrUndefined(to, rootPath)]);
  const walk: Walk = { hints: options.deltas === false ? [] : await deltaHints(from.layers, to.layers) };
  const out: Change[] = [];
  for await (const change of visit(walk, names, a, b, true)) {
    out.push(change);
    if (out.length >= 256) yield out.splice(0);
  }
  if (out.length > 0) yield out;
}

async function lookupOrUndefined(p: Projection, path: Buffer): Promise<Node | undefined> {
  try {
    return await p.lookup(path);
  } catch (err) {
    if (isStrataError(err) && (err.errno === Errno.ENOENT || err.errno === Errno.ENOTDIR)) return undefined;
    throw err;
  }
}

/** Every hint a layer of `to` can give about a layer of `from`. */
async function deltaHints(from: readonly LayerSource[], to: readonly LayerSource[]): Promise<DeltaHint[]> {
  const out: DeltaHint[] = [];
  for (const b of to) {
    if (!b.deltaOver) continue;
    for (const a of from) {
      const hint = await b.deltaOver(a);
      if (hint) out.push(hint);
    }
  }
  return out;
}

/** One side of a compared name: its node, or the error that reading it gave. */
type Side = Node | StrataError | undefined;

async function* visit(walk: Walk, names: Buffer[], a: Side, b: Side, isRoot: boolean): AsyncGenerator<Change> {
  if (isStrataError(a) || isStrataError(b)) {
    yield damagedChange(names, a, b);
    return;
  }
  if (!a) {
    if (!b) return;
    yield { path: joinPath(names), kind: 'added', after: attrOf(b) };
    yield* addedBelow(names, b);
    return;
  }
  if (!b) {
    yield { path: joinPath(names), kind: 'deleted', before: attrOf(a) };
    return;
  }
  if (provablySame(walk, a, b)) return;
  // Like continuity, the root of the comparison is not itself reported.
  if (!isRoot) {
    let same: boolean;
    try {
      same = await sameEntry(a, b);
    } catch (err) {
      yield { path: joinPath(names), kind: 'modified', before: attrOf(a), after: attrOf(b), error: withPath(err, names) };
      return;
    }
    if (!same) yield { path: joinPath(names), kind: 'modified', before: attrOf(a), after: attrOf(b) };
  }
  if (a.kind === 'dir' && b.kind === 'dir') {
    const [ca, cb] = await Promise.all([listed(a, names), listed(b, names)]);
    if (isStrataError(ca) || isStrataError(cb)) {
      yield { path: joinPath(names), kind: 'modified', before: attrOf(a), after: attrOf(b), error: isStrataError(ca) ? ca : (cb as StrataError) };
      return;
    }
    let i = 0;
    let j = 0;
    while (i < ca.length || j < cb.length) {
      const cmp = i >= ca.length ? 1 : j >= cb.length ? -1 : Buffer.compare(ca[i].name, cb[j].name);
      if (cmp < 0) {
        yield* visit(walk, [...names, ca[i].name], sideOf(ca[i], names), undefined, false);
        i++;
      } else if (cmp > 0) {
        yield* visit(walk, [...names, cb[j].name], undefined, sideOf(cb[j], names), false);
        j++;
      } else {
        yield* visit(walk, [...names, ca[i].name], sideOf(ca[i], names), sideOf(cb[j], names), false);
        i++;
        j++;
      }
    }
  } else if (b.kind === 'dir') {
    yield* addedBelow(names, b);
  }
  // A directory replaced by a non-directory: its old subtree is covered by the one change above.
}

/** A name one side cannot read: what is known of it (present on which side), with the error. */
function damagedChange(names: Buffer[], a: Side, b: Side): Change {
  const path = joinPath(names);
  const error = isStrataError(b) ? b : (a as StrataError);
  if (!a) return { path, kind: 'added', ...(b && !isStrataError(b) ? { after: attrOf(b) } : {}), error };
  if (!b) return { path, kind: 'deleted', ...(!isStrataError(a) ? { before: attrOf(a) } : {}), error };
  return { path, kind: 'modified', ...(isStrataError(a) ? {} : { before: attrOf(a) }), ...(isStrataError(b) ? {} : { after: attrOf(b) }), error };
}

function sideOf(e: MergedEntry, parent: Buffer[]): Side {
  return e.node ?? withPath(e.error, [...parent, e.name]);
}

/** A directory's merged entries, or the error of its listing. */
async function listed(dir: Node, names: Buffer[]): Promise<MergedEntry[] | StrataError> {
  if (dir.kind !== 'dir') return [];
  try {
    return await mergeDir(dir);
  } catch (err) {
    return withPath(err, names);
  }
}

function withPath(err: unknown, names: Buffer[]): StrataError {
  const e = StrataError.from(err);
  if (e.path) return e;
  const path = joinPath(names);
  return new StrataError(e.errno, `${e.message}: ${printable(path)}`, { path, code: e.code, cause: e.cause ?? err });
}

async function* addedBelow(names: Buffer[], node: Node): AsyncGenerator<Change> {
  if (node.kind !== 'dir') return;
  const children = await listed(node, names);
  if (isStrataError(children)) {
    yield { path: joinPath(names), kind: 'added', after: attrOf(node), error: children };
    return;
  }
  for (const c of children) {
    const childNames = [...names, c.name];
    if (!c.node) {
      yield damagedChange(childNames, undefined, sideOf(c, names));
      continue;
    }
    yield { path: joinPath(childNames), kind: 'added', after: attrOf(c.node) };
    yield* addedBelow(childNames, c.node);
  }
}

/**
 * Equal without a look inside: the same objects on both sides, or objects
 * a source vouches for. A directory made of such objects layer by layer is
 * equal with everything below it.
 */
function provablySame(walk: Walk, a: Node, b: Node): boolean {
  const same = (x: LayerObject, y: LayerObject): boolean => sameObject(x, y) || walk.hints.some((h) => h.unchanged(x, y));
  if (a.kind === 'leaf' && b.kind === 'leaf') return same(a.obj, b.obj);
  if (a.kind === 'dir' && b.kind === 'dir') return a.dirs.length === b.dirs.length && a.dirs.every((d, i) => same(d, b.dirs[i]));
  return false;
}

async function sameEntry(a: Node, b: Node): Promise<boolean> {
  const sa = a.st;
  const sb = b.st;
  // Sources give every filesystem its own dev, so (dev, ino) names one object across views and hard links.
  if (a.kind === 'leaf' && b.kind === 'leaf' && sa.dev === sb.dev && sa.ino === sb.ino) return true;
  if (sa.mode !== sb.mode || sa.uid !== sb.uid || sa.gid !== sb.gid) return false;
  if (isDeviceMode(Number(sa.mode)) && sa.rdev !== sb.rdev) return false;
  if (!(await sameXattrs(supplierOf(a), supplierOf(b)))) return false;
  if (a.kind === 'dir' || b.kind === 'dir') return true;
  if (sa.size !== sb.size) return false;
  if (sa.mtimeNs / NS !== sb.mtimeNs / NS) return false;
  const na = sa.mtimeNs % NS;
  const nb = sb.mtimeNs % NS;
  if (na === 0n && nb === 0n) {
    if (isLinkStat(sa)) {
      const [ta, tb] = await Promise.all([a.obj.layer.readlink(a.obj), b.obj.layer.readlink(b.obj)]);
      return ta.equals(tb);
    }
    if (sa.size === 0n || !isRegStat(sa)) return true;
    return sameContent(a.obj, b.obj, Number(sa.size));
  }
  return na === nb;
}

async function sameXattrs(a: LayerObject, b: LayerObject): Promise<boolean> {
  const [na, nb] = await Promise.all([visibleXattrNames(a), visibleXattrNames(b)]);
  na.sort();
  nb.sort();
  if (na.length !== nb.length || na.some((n, i) => n !== nb[i])) return false;
  for (const n of na) {
    const [va, vb] = await Promise.all([a.layer.getXattr(a, n), b.layer.getXattr(b, n)]);
    if (va === undefined || vb === undefined || !va.equals(vb)) return false;
  }
  return true;
}

async function sameContent(a: LayerObject, b: LayerObject, size: number): Promise<boolean> {
  for (let pos = 0; pos < size; pos += COMPARE_CHUNK) {
    const want = Math.min(COMPARE_CHUNK, size - pos);
    const [ra, rb] = await Promise.all([a.layer.read(a, pos, want), b.layer.read(b, pos, want)]);
    if (ra.length !== rb.length) return false;
    if (ra.length === 0) return true;
    if (!ra.equals(rb)) return false;
  }
  return true;
}
