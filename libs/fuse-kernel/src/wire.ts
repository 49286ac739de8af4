/**
 * Packing of attributes, listings, xattrs and statfs into the byte layouts the
 * addon copies as they are: fuse_attr and fuse_kstatfs of <linux/fuse.h>,
 * and the listing/xattr containers that native/addon.cc parses. Everything is
 * validated here, so a handler's bad answer becomes an error in JavaScript
 * rather than a corrupt reply to the kernel (the addon checks lengths again).
 */
import { StrataError } from '@strata/errors';
import type { Attr, DirEntry, StatFs } from './types';

export const ATTR_SIZE = 88;
export const STATFS_SIZE = 80;
const LISTING_HEADER = 24;
const LISTING_ENTRY_HEAD = 24;
const NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;

const NS_PER_SEC = 1_000_000_000n;
const U32_MAX = 0xffff_ffff;
const S_IFMT = 0o170000;
/** By type >> 12: whether it is a file type (a lookup per entry of a listing, cheaper than a Set's). */
const FILE_TYPES: readonly boolean[] = Array.from({ length: 16 }, (_, t) => [0o01, 0o02, 0o04, 0o06, 0o10, 0o12, 0o14].includes(t));

function u32(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 0 || v > U32_MAX) throw StrataError.invalid(`${what} ${v} is not a 32-bit unsigned integer`);
  return v;
}

function u64(value: bigint | number | undefined, fallback: bigint, what: string): bigint {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw StrataError.invalid(`${what} ${value} is not an integer`);
  const v = BigInt(value);
  if (v < 0n || v > 0x7fff_ffff_ffff_ffffn) throw StrataError.invalid(`${what} ${v} is out of range`);
  return v;
}

/** Seconds (two's complement, as the kernel reads them) and nanoseconds of a time in ns. */
function splitNs(ns: bigint | undefined): [bigint, number] {
  if (ns === undefined) return [0n, 0];
  let sec = ns / NS_PER_SEC;
  let rem = ns % NS_PER_SEC;
  if (rem < 0n) {
    rem += NS_PER_SEC;
    sec -= 1n;
  }
  return [BigInt.asUintN(64, sec), Number(rem)];
}

/** The file type bits of a mode, checked. */
export function fileType(mode: number): number {
  const type = mode & S_IFMT;
  if (!FILE_TYPES[type >> 12]) throw StrataError.invalid(`mode 0o${mode.toString(8)} has no file type`);
  return type;
}

/** dirent type (DT_*) of a mode. */
export function direntType(mode: number): number {
  return fileType(mode) >> 12;
}

/**
 * Plain-number forms of an Attr's st_ino and times, which an attribute
 * object may carry beside (and equal to) `ino` and the *Ns fields: encoding
 * them spares a BigInt per field, by the thousand when a listing is packed.
 * Used only when all are there and in range; otherwise the bigint fields are.
 */
export interface AttrNumbers {
  stIno: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

const TWO32 = 0x1_0000_0000;

function isNsec(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 1_000_000_000;
}

function numbersOf(attr: Attr): AttrNumbers | undefined {
  const a = attr as Attr & Partial<AttrNumbers>;
  const { stIno, atimeSec, mtimeSec, ctimeSec } = a;
  if (typeof stIno !== 'number' || !Number.isSafeInteger(stIno) || stIno < 0) return undefined;
  if (!Number.isSafeInteger(atimeSec) || !Number.isSafeInteger(mtimeSec) || !Number.isSafeInteger(ctimeSec)) return undefined;
  if (!isNsec(a.atimeNsec) || !isNsec(a.mtimeNsec) || !isNsec(a.ctimeNsec)) return undefined;
  return a as AttrNumbers;
}

/** A safe integer as 64 bits, two's complement (what writeBigInt64LE writes for it). */
function setI64(dv: DataView, offset: number, n: number): void {
  const hi = Math.floor(n / TWO32);
  dv.setUint32(offset, n - hi * TWO32, true);
  dv.setInt32(offset + 4, hi, true);
}

/** size or blocks as 64 bits: a number without a BigInt. */
function setU64(dv: DataView, offset: number, value: bigint | number | undefined, fallback: bigint | number, what: string): void {
  const v = value ?? fallback;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) setI64(dv, offset, v);
  else dv.setBigUint64(offset, u64(v, 0n, what), true);
}

/** A DataView of a Buffer's bytes: its setters cost less than Buffer's write methods, by the thousand in a listing. */
function viewOf(out: Buffer): DataView {
  return new DataView(out.buffer, out.byteOffset, out.byteLength);
}

/** Writes attr as a fuse_attr (88 bytes) at offset of out; st_ino defaults to ino. */
export function encodeAttr(attr: Attr, ino: bigint, out: Buffer = Buffer.alloc(ATTR_SIZE), offset = 0): Buffer {
  if (offset < 0 || offset + ATTR_SIZE > out.length) throw new RangeError(`no room for a fuse_attr at ${offset} of ${out.length} bytes`);
  packAttr(viewOf(out), offset, attr, ino);
  return out;
}

function packAttr(dv: DataView, offset: number, attr: Attr, ino: bigint): void {
  const mode = u32(attr.mode, 0, 'mode');
  fileType(mode);
  const n = numbersOf(attr);
  if (typeof attr.size === 'number' && Number.isSafeInteger(attr.size) && attr.size >= 0) {
    setI64(dv, offset + 8, attr.size);
    setU64(dv, offset + 16, attr.blocks, Math.ceil(attr.size / 512), 'blocks');
  } else {
    const size = u64(attr.size, 0n, 'size');
    dv.setBigUint64(offset + 8, size, true);
    dv.setBigUint64(offset + 16, u64(attr.blocks, (size + 511n) / 512n, 'blocks'), true);
  }
  if (n) {
    setI64(dv, offset, n.stIno);
    setI64(dv, offset + 24, n.atimeSec);
    setI64(dv, offset + 32, n.mtimeSec);
    setI64(dv, offset + 40, n.ctimeSec);
    dv.setUint32(offset + 48, n.atimeNsec, true);
    dv.setUint32(offset + 52, n.mtimeNsec, true);
    dv.setUint32(offset + 56, n.ctimeNsec, true);
  } else {
    const [asec, ansec] = splitNs(attr.atimeNs);
    const [msec, mnsec] = splitNs(attr.mtimeNs);
    const [csec, cnsec] = splitNs(attr.ctimeNs);
    dv.setBigUint64(offset, BigInt.asUintN(64, attr.ino ?? ino), true);
    dv.setBigUint64(offset + 24, asec, true);
    dv.setBigUint64(offset + 32, msec, true);
    dv.setBigUint64(offset + 40, csec, true);
    dv.setUint32(offset + 48, ansec, true);
    dv.setUint32(offset + 52, mnsec, true);
    dv.setUint32(offset + 56, cnsec, true);
  }
  dv.setUint32(offset + 60, mode, true);
  dv.setUint32(offset + 64, u32(attr.nlink, 1, 'nlink'), true);
  dv.setUint32(offset + 68, u32(attr.uid, 0, 'uid'), true);
  dv.setUint32(offset + 72, u32(attr.gid, 0, 'gid'), true);
  dv.setUint32(offset + 76, u32(attr.rdev, 0, 'rdev'), true);
  dv.setUint32(offset + 80, u32(attr.blksize, 4096, 'blksize'), true);
  dv.setUint32(offset + 84, 0, true);
}

function checkNameLength(name: Buffer): void {
  if (!Buffer.isBuffer(name) || name.length === 0 || name.length > NAME_MAX) {
    throw StrataError.invalid(`a name must be 1..${NAME_MAX} bytes`, Buffer.isBuffer(name) ? name : undefined);
  }
}

/** Checks a name as Linux allows it in a directory: 1..255 bytes, no '/' or NUL. */
export function checkName(name: Buffer): void {
  checkNameLength(name);
  if (name.includes(0x2f) || name.includes(0)) throw StrataError.invalid("a name may not contain '/' or NUL", name);
}

/**
 * A name (its length checked) into out, checked byte by byte as it goes
 * ('/' and NUL refused, as checkName does): one plain loop, as Buffer.copy
 * and two scans cost more than the copy for bytes this few.
 */
function copyName(name: Buffer, out: Buffer, offset: number): void {
  for (let i = 0; i < name.length; i++) {
    const b = name[i];
    if (b === 0x2f || b === 0) throw StrataError.invalid("a name may not contain '/' or NUL", name);
    out[offset + i] = b;
  }
}

/** Packs a listing for the addon (native/addon.cc ParseListing). */
export function encodeListing(entries: readonly DirEntry[], dotIno = 0n, dotdotIno = 0n): Buffer {
  let size = LISTING_HEADER;
  for (const e of entries) {
    checkNameLength(e.name);
    size += LISTING_ENTRY_HEAD + (e.attr ? ATTR_SIZE : 0) + e.name.length;
  }
  const out = Buffer.alloc(size);
  const dv = viewOf(out);
  dv.setUint32(0, entries.length, true);
  dv.setBigUint64(8, BigInt.asUintN(64, dotIno), true);
  dv.setBigUint64(16, BigInt.asUintN(64, dotdotIno), true);
  let off = LISTING_HEADER;
  for (const e of entries) {
    const mode = e.attr ? e.attr.mode : e.mode;
    if (mode === undefined) throw StrataError.invalid('a directory entry needs attr or mode', e.name);
    dv.setBigUint64(off, BigInt.asUintN(64, e.ino), true);
    const stIno = e.attr ? numbersOf(e.attr)?.stIno : undefined;
    if (stIno !== undefined) setI64(dv, off + 8, stIno);
    else dv.setBigUint64(off + 8, BigInt.asUintN(64, e.attr?.ino ?? e.ino), true);
    // Mode 0 without attributes: a name whose object cannot be read, listed as DT_UNKNOWN as readdir may.
    dv.setUint32(off + 16, !e.attr && (mode & S_IFMT) === 0 ? 0 : direntType(mode), true);
    dv.setUint16(off + 20, e.name.length, true);
    dv.setUint8(off + 22, e.attr ? 1 : 0);
    off += LISTING_ENTRY_HEAD;
    if (e.attr) {
      packAttr(dv, off, e.attr, e.ino);
      off += ATTR_SIZE;
    }
    copyName(e.name, out, off);
    off += e.name.length;
  }
  return out;
}

/** Packs a node's whole xattr set for the addon (native/addon.cc ParseXattrs). */
export function encodeXattrs(xattrs: ReadonlyArray<readonly [Buffer, Buffer]>): Buffer {
  let size = 4;
  for (const [name, value] of xattrs) {
    if (name.length === 0 || name.length > NAME_MAX || name.includes(0)) throw StrataError.invalid('bad xattr name', name);
    if (value.length > XATTR_SIZE_MAX) throw StrataError.invalid('xattr value over 64 KiB', name);
    size += 8 + name.length + value.length;
  }
  const out = Buffer.alloc(size);
  out.writeUInt32LE(xattrs.length, 0);
  let off = 4;
  for (const [name, value] of xattrs) {
    out.writeUInt32LE(name.length, off);
    out.writeUInt32LE(value.length, off + 4);
    off += 8;
    name.copy(out, off);
    off += name.length;
    value.copy(out, off);
    off += value.length;
  }
  return out;
}

/** xattr names as LISTXATTR answers them: each followed by NUL. */
export function encodeNames(names: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const name of names) {
    if (name.length === 0 || name.length > NAME_MAX || name.includes(0)) throw StrataError.invalid('bad xattr name', name);
    parts.push(name, Buffer.alloc(1));
  }
  return Buffer.concat(parts);
}

/** fuse_kstatfs (80 bytes). */
export function encodeStatfs(st: StatFs): Buffer {
  const out = Buffer.alloc(STATFS_SIZE);
  out.writeBigUInt64LE(u64(st.blocks, 0n, 'blocks'), 0);
  out.writeBigUInt64LE(u64(st.bfree, 0n, 'bfree'), 8);
  out.writeBigUInt64LE(u64(st.bavail, 0n, 'bavail'), 16);
  out.writeBigUInt64LE(u64(st.files, 0n, 'files'), 24);
  out.writeBigUInt64LE(u64(st.ffree, 0n, 'ffree'), 32);
  const bsize = u32(st.bsize, 4096, 'bsize');
  out.writeUInt32LE(bsize, 40);
  out.writeUInt32LE(u32(st.namelen, NAME_MAX, 'namelen'), 44);
  out.writeUInt32LE(u32(st.frsize, bsize, 'frsize'), 48);
  return out;
}
