import { StrataError } from '@strata/errors';
import { type Attr, ExtentKind, type ExtentMapResponse, type GetStoreIdentityResponse, type StoreFile } from '@strata/protocol';

/** A store file as the resolver saw it when it answered; a reader compares it with fstat(2) of the file it opens. */
export interface StoreFileIdentity {
  /** Relative to the store root. */
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
}

/** Which image store a resolver serves (`storeIdentity()`). */
export interface StoreIdentity {
  storeId: string;
  /** The store's id file (`.strata/store-id`) as the resolver sees it. */
  marker: StoreFileIdentity;
}

/** A stretch of a layer file: in a store file, zeros, or only the resolver's Read gives it. */
export type FileExtent =
  | { kind: 'data'; offset: number; length: number; file: number; fileOffset: number }
  | { kind: 'hole'; offset: number; length: number }
  | { kind: 'unmapped'; offset: number; length: number; reason: string };

/** `extentMap()`: [offset, offset+length) of a sealed layer's file, run by run. */
export interface ExtentMap {
  storeId: string;
  attr: Attr | undefined;
  files: StoreFileIdentity[];
  extents: FileExtent[];
  offset: number;
  length: number;
  eof: boolean;
  /** Maps of other files of the directory, each from its start (asked with `siblings`); empty otherwise. */
  siblings?: SiblingExtentMap[];
}

/** Another file of the directory, mapped from its start. */
export interface SiblingExtentMap {
  path: Buffer;
  map: ExtentMap;
}

/** Siblings read from one answer at most (the resolver sends 256 at most). */
const MAX_SIBLINGS = 1024;

function storeFileFromProto(f: StoreFile | undefined): StoreFileIdentity {
  if (!f) throw StrataError.io('extent map: a store file without its identity');
  return { path: f.path, dev: f.dev, ino: f.ino, size: f.size, mtimeSec: f.mtimeSec, mtimeNsec: f.mtimeNsec };
}

export function storeIdentityFromProto(r: GetStoreIdentityResponse): StoreIdentity {
  return { storeId: r.storeId, marker: storeFileFromProto(r.marker) };
}

/** What was asked, as far as the answer's siblings are checked against it. */
export interface ExtentMapAsked {
  /** The file asked for. */
  path: Buffer;
  /** Siblings may be files of the directories after the file's (ExtentMapRequest.beyond_directory). */
  beyondDirectory?: boolean;
}

/** The directory part of a path, its components without empty ones ("/a//b/f" and "a/b/f": "a/b"). */
function directoryOf(p: Buffer): string {
  const parts = p.toString('latin1').split('/').filter((c) => c !== '');
  return parts.slice(0, -1).join('/');
}

/**
 * The wire's map, checked as a reader needs it: runs in order from
 * `offset` without gaps or overlaps, each data run naming a file the
 * answer lists; with `asked`, siblings in the file's directory unless it
 * asked for the directories after it too. A resolver that answers
 * otherwise is not followed.
 */
export function extentMapFromProto(r: ExtentMapResponse, asked?: ExtentMapAsked): ExtentMap {
  const m = oneMap(r);
  if (r.siblings.length === 0) return m;
  const dir = asked && !asked.beyondDirectory ? directoryOf(asked.path) : undefined;
  // A sibling is checked as the file is; its own siblings, if a resolver sent any, are not followed.
  m.siblings = r.siblings.slice(0, MAX_SIBLINGS).map((s) => {
    if (!s.map) throw StrataError.io('extent map: a sibling without its map');
    if (s.map.offset !== 0) throw StrataError.io(`extent map: a sibling mapped from ${s.map.offset}, not its start`);
    if (dir !== undefined && directoryOf(s.path) !== dir) throw StrataError.io(`extent map: a sibling outside the file's directory (${s.path.toString('utf8')}), not asked for`);
    return { path: s.path, map: oneMap(s.map) };
  });
  return m;
}

function oneMap(r: ExtentMapResponse): ExtentMap {
  const files = r.files.map(storeFileFromProto);
  const extents: FileExtent[] = [];
  let pos = r.offset;
  for (const e of r.extents) {
    if (e.offset !== pos || e.length <= 0) throw StrataError.io(`extent map: a run at ${e.offset}+${e.length} where ${pos} was expected`);
    if (e.kind === ExtentKind.EXTENT_KIND_DATA) {
      if (e.file >= files.length) throw StrataError.io(`extent map: a run names store file ${e.file} of ${files.length}`);
      extents.push({ kind: 'data', offset: e.offset, length: e.length, file: e.file, fileOffset: e.fileOffset });
    } else if (e.kind === ExtentKind.EXTENT_KIND_HOLE) {
      extents.push({ kind: 'hole', offset: e.offset, length: e.length });
    } else {
      extents.push({ kind: 'unmapped', offset: e.offset, length: e.length, reason: e.reason || 'unknown' });
    }
    pos += e.length;
  }
  if (pos !== r.offset + r.length) throw StrataError.io(`extent map: runs end at ${pos}, the answer says ${r.offset + r.length}`);
  return { storeId: r.storeId, attr: r.attr, files, extents, offset: r.offset, length: r.length, eof: r.eof };
}
