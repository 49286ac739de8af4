/**
 * The per-opcode table of the requests that can reach JavaScript: for each,
 * which handler answers it and how its answer is packed into which reply of
 * the addon. It is the TypeScript half of native/opcodes.cc (the `js` column
 * there is `answer` here; ops.test checks the two agree), so the session
 * itself names no opcode.
 */
import { Errno, StrataError } from '@strata/errors';
import type { NativeRequest, NativeSession } from './native';
import type { AttrAnswer, Caller, Entry, FuseHandlers, LinkAnswer, Listing, StatFs } from './types';
import { encodeAttr, encodeListing, encodeNames, encodeStatfs } from './wire';

/** What JavaScript answers an op with: native/opcodes.h JsAnswer. */
export const JsAnswer = { ENTRY: 1, ATTR: 2, LISTING: 3, DATA: 4, LINK: 5, XATTR: 6, STATFS: 7, OPEN: 8 } as const;
export type JsAnswer = (typeof JsAnswer)[keyof typeof JsAnswer];

/** The session's timeouts, for answers that leave them out (seconds). */
export interface Defaults {
  entryTimeout: number;
  attrTimeout: number;
  negativeTimeout: number;
  negativeCacheTtl: number;
}

export interface OpRow {
  /** The opcode (<linux/fuse.h>). */
  opcode: number;
  /** The name errors are reported under. */
  name: string;
  answer: JsAnswer;
  /** Calls the handler (or answers for an optional one that is missing). */
  invoke(h: FuseHandlers, req: NativeRequest, caller: Caller): unknown;
  /** Packs the handler's answer (not a number: errnos are the session's) and replies; throws for a malformed one. */
  reply(n: NativeSession, req: NativeRequest, value: unknown, t: Defaults): void;
  /** Answers ENOENT some other way than the error (LOOKUP: a negative entry the kernel and the cache may keep). */
  enoent?(n: NativeSession, req: NativeRequest, t: Defaults): void;
}

const DEFAULT_STATFS: StatFs = { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255 };
const NO_NAME = Buffer.alloc(0);
const noAnswer = (): undefined => undefined;

function asBuffer(value: unknown, op: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw StrataError.invalid(`${op} must answer a Buffer`);
}

const readdir: Omit<OpRow, 'opcode' | 'name'> = {
  answer: JsAnswer.LISTING,
  invoke: (h, r, c) => h.readdir(r.ino, c),
  reply: (n, r, v, t) => {
    const l = v as Listing;
    n.replyListing(
      r.id,
      encodeListing(l.entries, l.dotIno, l.dotdotIno),
      l.entryTimeout ?? t.entryTimeout,
      l.attrTimeout ?? t.attrTimeout,
      l.cacheTtl ?? 0,
    );
  },
};

/** The rows, one per opcode. */
export const OPS: readonly OpRow[] = [
  {
    opcode: 1,
    name: 'lookup',
    answer: JsAnswer.ENTRY,
    invoke: (h, r, c) => h.lookup(r.ino, r.name ?? NO_NAME, c),
    reply: (n, r, v, t) => {
      const e = v as Entry;
      n.replyEntry(r.id, e.ino, encodeAttr(e.attr, e.ino), e.entryTimeout ?? t.entryTimeout, e.attrTimeout ?? t.attrTimeout, e.cacheTtl ?? 0);
    },
    enoent: (n, r, t) => n.replyNegative(r.id, t.negativeTimeout, t.negativeCacheTtl),
  },
  {
    opcode: 3,
    name: 'getattr',
    answer: JsAnswer.ATTR,
    invoke: (h, r, c) => h.getattr(r.ino, c),
    reply: (n, r, v, t) => {
      const a = v as AttrAnswer;
      n.replyAttr(r.id, encodeAttr(a.attr, r.ino), a.attrTimeout ?? t.attrTimeout, a.cacheTtl ?? 0);
    },
  },
  {
    opcode: 5,
    name: 'readlink',
    answer: JsAnswer.LINK,
    invoke: (h, r, c) => (h.readlink ? h.readlink(r.ino, c) : -Errno.ENOSYS),
    reply: (n, r, v) => {
      const link = Buffer.isBuffer(v) ? { target: v } : (v as LinkAnswer);
      const target = asBuffer(link.target, 'readlink');
      // An empty target is a link the filesystem holds (ext4 reads a size-0 slow symlink as ""); the kernel's FUSE takes it.
      n.replyLink(r.id, target, link.cacheTtl ?? 0);
    },
  },
  {
    opcode: 14,
    name: 'open',
    answer: JsAnswer.OPEN,
    // Whatever the handler does, the OPEN is answered (from what it registered, if anything): never an error of its.
    invoke: (h, r, c) => (h.open ? Promise.resolve(h.open(r.ino, c)).then(noAnswer, noAnswer) : undefined),
    reply: (n, r) => {
      n.replyOpen(r.id);
    },
  },
  {
    opcode: 15,
    name: 'read',
    answer: JsAnswer.DATA,
    invoke: (h, r, c) => h.read(r.ino, r.fh, r.offset, r.size, c),
    reply: (n, r, v) => n.replyData(r.id, asBuffer(v, 'read')),
  },
  {
    opcode: 17,
    name: 'statfs',
    answer: JsAnswer.STATFS,
    invoke: (h, r, c) => (h.statfs ? h.statfs(r.ino, c) : DEFAULT_STATFS),
    reply: (n, r, v) => {
      const st = v as StatFs;
      n.replyStatfs(r.id, encodeStatfs(st), st.cacheTtl ?? 0);
    },
  },
  {
    opcode: 22,
    name: 'getxattr',
    answer: JsAnswer.XATTR,
    invoke: (h, r, c) => (h.getxattr ? h.getxattr(r.ino, r.name ?? NO_NAME, c) : -Errno.ENOSYS),
    reply: (n, r, v) => n.replyXattr(r.id, asBuffer(v, 'getxattr')),
  },
  {
    opcode: 23,
    name: 'listxattr',
    answer: JsAnswer.XATTR,
    invoke: (h, r, c) => (h.listxattr ? h.listxattr(r.ino, c) : -Errno.ENOSYS),
    reply: (n, r, v) => {
      if (!Array.isArray(v)) throw StrataError.invalid('listxattr must answer an array of Buffers');
      n.replyXattr(r.id, encodeNames(v.map((x) => asBuffer(x, 'listxattr'))));
    },
  },
  { opcode: 28, name: 'readdir', ...readdir },
  { opcode: 44, name: 'readdirplus', ...readdir },
];

const BY_OPCODE: ReadonlyMap<number, OpRow> = new Map(OPS.map((row) => [row.opcode, row]));

/** The row of an opcode that can reach JavaScript; undefined for any other (answered ENOSYS). */
export function opRow(op: number): OpRow | undefined {
  return BY_OPCODE.get(op);
}

/** FUSE opcodes of the requests that can reach JavaScript, by upper-case name (kept for callers of the old table). */
export const Op = Object.fromEntries(OPS.map((row) => [row.name.toUpperCase(), row.opcode])) as Readonly<
  Record<'LOOKUP' | 'GETATTR' | 'READLINK' | 'OPEN' | 'READ' | 'STATFS' | 'GETXATTR' | 'LISTXATTR' | 'READDIR' | 'READDIRPLUS', number>
>;

export function opName(op: number): string {
  return BY_OPCODE.get(op)?.name ?? `op${op}`;
}
