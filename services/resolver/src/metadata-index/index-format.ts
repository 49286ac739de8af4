import { createHash } from 'node:crypto';
import { type GrpcCodeValue, StrataError } from '@strata/errors';
import { isDirMode, isLinkMode } from '@strata/posix';
import type { Attr } from '@strata/protocol';
import type { WalkEntry, WalkError } from '@strata/traversal';
import { ByteReader, ByteWriter, corrupt } from './wire-bytes';

/**
 * The metadata index file of one sealed chain (docs/design.md §3, issue 28):
 * every entry of the merged tree in the order a Walk of "/" returns it,
 * each as its depth and name (paths are rebuilt from the ancestors), its
 * attributes, a symlink's target, or the error of a damaged entry.
 *
 *   header   magic "STRATAMI", u32 version, u32 flags (0), u32 key length,
 *            u32 entry count, u32 body length, u32 reserved (0)   32 bytes
 *   key      the chain's cache identity (ChainView.key), utf-8
 *   body     entries (below)
 *   trailer  sha256 of everything before it                        32 bytes
 *
 *   entry    u8 tag (0 entry, 1 entry with link target, 2 damaged entry),
 *            varint depth (0 only for the root, first), bytes name,
 *            tag 0/1: 15 attr fields as varints (seconds zigzag), tag 1: bytes target
 *            tag 2:   varint errno, varint gRPC code, bytes message, u8 has path, [bytes path]
 *
 * All integers little-endian; varints 7 bits a byte; `bytes` is a varint
 * length and the bytes.
 */
export const INDEX_MAGIC = Buffer.from('STRATAMI');
export const INDEX_VERSION = 1;
const HEADER_BYTES = 32;
const TRAILER_BYTES = 32;
const MAX_KEY_BYTES = 1024;
const NAME_MAX = 255;
const PATH_MAX = 4096;
/** Deeper than any path of PATH_MAX bytes can go ("/a" per level). */
const MAX_DEPTH = PATH_MAX / 2;
const MAX_MESSAGE_BYTES = 16 * 1024;
/** An error's path as the traversal made it: a layer path, bounded like any path (a little slack for source-relative spellings). */
const MAX_ERROR_PATH_BYTES = 2 * PATH_MAX;

const TAG_ENTRY = 0;
const TAG_LINK = 1;
const TAG_DAMAGED = 2;

/** Default bound of one index file: a chain bigger than this is walked by traversal, as before. */
export const DEFAULT_MAX_INDEX_BYTES = 128 * 1024 * 1024;
/** Fewer entries than bytes/8 fit anyway; this bounds the parser's typed arrays before the body is read. */
const MIN_ENTRY_BYTES = 8;

function writeAttr(w: ByteWriter, a: Attr): void {
  w.uvar(a.ino);
  w.uvar(a.mode);
  w.uvar(a.nlink);
  w.uvar(a.uid);
  w.uvar(a.gid);
  w.uvar(a.rdev);
  w.uvar(a.size);
  w.uvar(a.blocks);
  w.uvar(a.blksize);
  w.svar(a.atimeSec);
  w.uvar(a.atimeNsec);
  w.svar(a.mtimeSec);
  w.uvar(a.mtimeNsec);
  w.svar(a.ctimeSec);
  w.uvar(a.ctimeNsec);
}

function readAttr(r: ByteReader): Attr {
  return {
    ino: r.uvar(),
    mode: r.uvar(),
    nlink: r.uvar(),
    uid: r.uvar(),
    gid: r.uvar(),
    rdev: r.uvar(),
    size: r.uvar(),
    blocks: r.uvar(),
    blksize: r.uvar(),
    atimeSec: r.svar(),
    atimeNsec: r.uvar(),
    mtimeSec: r.svar(),
    mtimeNsec: r.uvar(),
    ctimeSec: r.svar(),
    ctimeNsec: r.uvar(),
  };
}

function notIndexable(why: string): StrataError {
  return StrataError.invalid(`not indexable: ${why}`);
}

const SLASH = 0x2f;

/**
 * Encodes a full walk of "/" (entries in the order the Walk gave them) as
 * an index. Anything a Walk of "/" could not have produced (out of order,
 * a directory's listing error, a link without its target) throws EINVAL:
 * the caller keeps serving by traversal and writes nothing.
 */
export class IndexBuilder {
  private readonly w: ByteWriter;
  /** Paths of the open directories, "/" first. */
  private readonly dirs: Buffer[] = [];
  /** Last name seen at each depth (siblings must come sorted). */
  private readonly lastName: (Buffer | undefined)[] = [];
  private prevDirPath: Buffer | undefined;
  count = 0;

  constructor(
    private readonly key: string,
    maxBytes: number = DEFAULT_MAX_INDEX_BYTES,
  ) {
    if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw notIndexable('chain key too long');
    this.w = new ByteWriter(maxBytes - HEADER_BYTES - TRAILER_BYTES - Buffer.byteLength(key));
  }

  add(e: WalkEntry | WalkError): void {
    const p = e.path;
    if (this.count === 0) {
      if (p.length !== 1 || p[0] !== SLASH || 'error' in e || !isDirMode(e.attr.mode)) throw notIndexable('a walk of "/" starts with the root directory');
      this.entry(e, 0, Buffer.alloc(0));
      this.dirs.push(p);
      this.lastName[1] = undefined;
      this.prevDirPath = p;
      return;
    }
    if ('error' in e && this.prevDirPath && p.equals(this.prevDirPath)) throw notIndexable(`the listing of ${p.toString('latin1')} failed`);
    const slash = p.lastIndexOf(SLASH);
    if (slash < 0 || slash === p.length - 1) throw notIndexable('a path without a name');
    const parent = slash === 0 ? p.subarray(0, 1) : p.subarray(0, slash);
    const name = p.subarray(slash + 1);
    while (this.dirs.length > 0 && !this.dirs[this.dirs.length - 1].equals(parent)) this.dirs.pop();
    if (this.dirs.length === 0) throw notIndexable('an entry outside the walked directories');
    const depth = this.dirs.length;
    const last = this.lastName[depth];
    if (last && Buffer.compare(last, name) >= 0) throw notIndexable('siblings out of order');
    this.lastName[depth] = name;
    this.entry(e, depth, name);
    this.prevDirPath = undefined;
    if (!('error' in e) && isDirMode(e.attr.mode)) {
      if (depth >= MAX_DEPTH) throw notIndexable('tree too deep');
      this.dirs.push(p);
      this.lastName[depth + 1] = undefined;
      this.prevDirPath = p;
    }
  }

  private entry(e: WalkEntry | WalkError, depth: number, name: Buffer): void {
    const w = this.w;
    if ('error' in e) {
      w.u8(TAG_DAMAGED);
      w.uvar(depth);
      w.bytes(name);
      const err = e.error;
      const message = Buffer.from(err.message);
      if (message.length > MAX_MESSAGE_BYTES || (err.path?.length ?? 0) > MAX_ERROR_PATH_BYTES) throw notIndexable('an error message too long');
      w.uvar(err.errno);
      w.uvar(err.code);
      w.bytes(message);
      w.u8(err.path ? 1 : 0);
      if (err.path) w.bytes(err.path);
    } else {
      const link = isLinkMode(e.attr.mode);
      if (link && !e.linkTarget) throw notIndexable('a symlink without its target');
      w.u8(link ? TAG_LINK : TAG_ENTRY);
      w.uvar(depth);
      w.bytes(name);
      writeAttr(w, e.attr);
      if (link) w.bytes(e.linkTarget!);
    }
    this.count++;
  }

  finish(): Buffer {
    if (this.count === 0) throw notIndexable('empty walk');
    const body = this.w.finish();
    const key = Buffer.from(this.key);
    const header = Buffer.alloc(HEADER_BYTES);
    INDEX_MAGIC.copy(header, 0);
    header.writeUInt32LE(INDEX_VERSION, 8);
    header.writeUInt32LE(0, 12);
    header.writeUInt32LE(key.length, 16);
    header.writeUInt32LE(this.count, 20);
    header.writeUInt32LE(body.length, 24);
    const sum = createHash('sha256').update(header).update(key).update(body).digest();
    return Buffer.concat([header, key, body, sum]);
  }
}

/** A checked index in memory: the file's bytes and, per entry, where it is and how it nests. */
export interface ParsedIndex {
  key: string;
  buf: Buffer;
  count: number;
  tag: Uint8Array;
  /** 1 for a directory (its subtree follows it). */
  dir: Uint8Array;
  depth: Uint16Array;
  nameOff: Uint32Array;
  nameLen: Uint8Array;
  /** Where the entry's attributes (or error) start. */
  bodyOff: Uint32Array;
  /** One past the last entry of the entry's subtree. */
  end: Uint32Array;
}

/** Why an index file is not used, as one log line says it. */
export type RejectReason = 'foreign' | 'version' | 'checksum' | 'corrupt' | 'too-big';

export class IndexRejected extends Error {
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Checks and indexes an index file: size, magic, version, the chain's
 * identity, the checksum, then every entry (depths nest under directories,
 * names are valid and sorted, fields in range). Anything wrong throws
 * IndexRejected; nothing is allocated beyond what the file's size allows.
 */
export function parseIndex(buf: Buffer, expectedKey: string, maxBytes: number = DEFAULT_MAX_INDEX_BYTES): ParsedIndex {
  if (buf.length > maxBytes) throw new IndexRejected('too-big', `${buf.length} bytes exceed the bound of ${maxBytes}`);
  if (buf.length < HEADER_BYTES + TRAILER_BYTES || !buf.subarray(0, 8).equals(INDEX_MAGIC)) throw new IndexRejected('foreign', 'not a strata metadata index');
  const version = buf.readUInt32LE(8);
  if (version !== INDEX_VERSION) throw new IndexRejected('version', `version ${version}, this resolver reads ${INDEX_VERSION}`);
  const keyLen = buf.readUInt32LE(16);
  const count = buf.readUInt32LE(20);
  const bodyLen = buf.readUInt32LE(24);
  if (keyLen > MAX_KEY_BYTES || HEADER_BYTES + keyLen + bodyLen + TRAILER_BYTES !== buf.length) throw new IndexRejected('corrupt', 'lengths in the header do not match the file');
  const bodyStart = HEADER_BYTES + keyLen;
  const key = buf.toString('utf8', HEADER_BYTES, bodyStart);
  if (key !== expectedKey) throw new IndexRejected('foreign', 'the index is of another chain');
  const sum = createHash('sha256').update(buf.subarray(0, buf.length - TRAILER_BYTES)).digest();
  if (!sum.equals(buf.subarray(buf.length - TRAILER_BYTES))) throw new IndexRejected('checksum', 'checksum mismatch');
  if (count === 0 || count > bodyLen / MIN_ENTRY_BYTES + 1) throw new IndexRejected('corrupt', `entry count ${count} impossible for ${bodyLen} bytes`);
  try {
    return parseBody(buf, key, count, bodyStart, bodyStart + bodyLen);
  } catch (err) {
    throw new IndexRejected('corrupt', err instanceof Error ? err.message : String(err));
  }
}

function parseBody(buf: Buffer, key: string, count: number, start: number, endOfBody: number): ParsedIndex {
  const idx: ParsedIndex = {
    key,
    buf,
    count,
    tag: new Uint8Array(count),
    dir: new Uint8Array(count),
    depth: new Uint16Array(count),
    nameOff: new Uint32Array(count),
    nameLen: new Uint8Array(count),
    bodyOff: new Uint32Array(count),
    end: new Uint32Array(count),
  };
  const r = new ByteReader(buf, start, endOfBody);
  /** Entry numbers of the open directories, the root first. */
  const open: number[] = [];
  const lastName: (Buffer | undefined)[] = [];
  for (let i = 0; i < count; i++) {
    const tag = r.u8();
    if (tag > TAG_DAMAGED) throw corrupt(`entry ${i}: tag ${tag}`);
    const depth = r.uvar();
    const name = r.skipBytes(NAME_MAX);
    if (i === 0) {
      if (depth !== 0 || name.len !== 0 || tag === TAG_DAMAGED) throw corrupt('the first entry is not the root');
    } else {
      if (depth < 1 || depth > open.length) throw corrupt(`entry ${i}: depth ${depth} not under an open directory`);
      while (open.length > depth) idx.end[open.pop()!] = i;
      const n = buf.subarray(name.off, name.off + name.len);
      if (name.len === 0 || n.includes(SLASH) || n.includes(0)) throw corrupt(`entry ${i}: bad name`);
      const last = lastName[depth];
      if (last && Buffer.compare(last, n) >= 0) throw corrupt(`entry ${i}: siblings out of order`);
      lastName[depth] = n;
    }
    idx.tag[i] = tag;
    idx.depth[i] = depth;
    idx.nameOff[i] = name.off;
    idx.nameLen[i] = name.len;
    idx.bodyOff[i] = r.pos;
    if (tag === TAG_DAMAGED) {
      readError(r);
      idx.end[i] = i + 1;
      continue;
    }
    const attr = readAttr(r);
    if (tag === TAG_LINK) {
      if (!isLinkMode(attr.mode)) throw corrupt(`entry ${i}: a target on a non-link`);
      if (r.bytes(PATH_MAX).length === 0) throw corrupt(`entry ${i}: empty link target`);
    } else if (isLinkMode(attr.mode)) {
      throw corrupt(`entry ${i}: a link without its target`);
    }
    if (isDirMode(attr.mode)) {
      if (depth >= MAX_DEPTH) throw corrupt(`entry ${i}: too deep`);
      open.push(i);
      idx.dir[i] = 1;
      lastName[depth + 1] = undefined;
    } else {
      idx.end[i] = i + 1;
      if (i === 0) throw corrupt('the root is not a directory');
    }
  }
  while (open.length > 0) idx.end[open.pop()!] = count;
  if (r.pos !== endOfBody) throw corrupt('bytes after the last entry');
  return idx;
}

function readError(r: ByteReader): StrataError {
  const errno = r.uvar();
  const code = r.uvar();
  if (errno < 1 || errno > 4095 || code > 16) throw corrupt(`errno ${errno} / code ${code} out of range`);
  const message = r.bytes(MAX_MESSAGE_BYTES).toString('utf8');
  const hasPath = r.u8();
  if (hasPath > 1) throw corrupt('bad path flag');
  const path = hasPath ? Buffer.from(r.bytes(MAX_ERROR_PATH_BYTES)) : undefined;
  return new StrataError(errno, message, { code: code as GrpcCodeValue, ...(path ? { path } : {}) });
}

/** Entry i of a checked index as a Walk gives it, at `path`. */
export function entryAt(idx: ParsedIndex, i: number, path: Buffer, includeLinkTargets: boolean): WalkEntry | WalkError {
  const r = new ByteReader(idx.buf, idx.bodyOff[i], idx.buf.length);
  if (idx.tag[i] === TAG_DAMAGED) return { path, error: readError(r) };
  const attr = readAttr(r);
  if (idx.tag[i] === TAG_LINK && includeLinkTargets) return { path, attr, linkTarget: Buffer.from(r.bytes(PATH_MAX)) };
  return { path, attr };
}

export function nameAt(idx: ParsedIndex, i: number): Buffer {
  return idx.buf.subarray(idx.nameOff[i], idx.nameOff[i] + idx.nameLen[i]);
}

export function isDamaged(idx: ParsedIndex, i: number): boolean {
  return idx.tag[i] === TAG_DAMAGED;
}

/** The attributes of entry i, which is not damaged. */
export function attrAt(idx: ParsedIndex, i: number): Attr {
  return readAttr(new ByteReader(idx.buf, idx.bodyOff[i], idx.buf.length));
}
