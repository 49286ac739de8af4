import { FileAttr } from './standard-information';
import { utf16ToBytes } from './unicode';

export const ReparseTag = {
  MOUNT_POINT: 0xa0000003,
  SYMLINK: 0xa000000c,
  LX_SYMLINK: 0xa000001d,
  AF_UNIX: 0x80000023,
  LX_FIFO: 0x80000024,
  LX_CHR: 0x80000025,
  LX_BLK: 0x80000026,
} as const;

const IS_MICROSOFT = 0x80000000;
/** Reparse data is at most 16 KiB (MAXIMUM_REPARSE_DATA_BUFFER_SIZE). */
export const MAX_REPARSE = 16 * 1024 + 8;

export interface ReparsePoint {
  tag: number;
  raw: Buffer;
}

/** ntfs-3g's rendering of a reparse point it cannot follow: always 34 bytes. */
export function badReparseTarget(tag: number): Buffer {
  return Buffer.from(`unsupported reparse tag 0x${tag.toString(16).padStart(8, '0')}`);
}

/** Sanity checks of ntfs-3g's valid_reparse_data. */
export function validReparse(rp: ReparsePoint, isDirectory: boolean, fileAttributes: number): boolean {
  const b = rp.raw;
  if (b.length < 8 || rp.tag === 0) return false;
  const dataLength = b.readUInt16LE(4);
  if (dataLength + 8 + ((rp.tag & IS_MICROSOFT) >>> 0 ? 0 : 16) !== b.length) return false;
  switch (rp.tag) {
    case ReparseTag.MOUNT_POINT: {
      if (b.length < 16) return false;
      return isDirectory && 16 + b.readUInt16LE(8) + b.readUInt16LE(10) <= b.length;
    }
    case ReparseTag.SYMLINK:
      return b.length >= 20 && 20 + b.readUInt16LE(8) + b.readUInt16LE(10) <= b.length;
    case ReparseTag.LX_SYMLINK:
      return dataLength > 4 && b.readUInt32LE(8) === 2;
    case ReparseTag.AF_UNIX:
    case ReparseTag.LX_FIFO:
    case ReparseTag.LX_CHR:
    case ReparseTag.LX_BLK:
      return dataLength === 0 && (fileAttributes & FileAttr.RECALL_ON_OPEN) !== 0;
    default:
      return true;
  }
}

/** What resolving a Windows path needs from the volume. */
export interface PathResolver {
  /** The first name in `dir` equal to `name` ignoring case, with its on-disk spelling. */
  findIgnoreCase(dir: number, name: number[]): Promise<{ record: number; name: number[] } | undefined>;
  /** Directory and reparse flags of a file; undefined when it cannot be opened. */
  kind(n: number): Promise<{ isDirectory: boolean; isReparse: boolean } | undefined>;
  /** ntfs_dir_parent_inode: the directory of a file's first name (undefined for the root). */
  parent(n: number): Promise<number | undefined>;
  /** Whether /.NTFS-3G/<letter>: exists (the user's drive-letter mapping). */
  driveDefined(letter: number): Promise<boolean>;
}

const BS = 0x5c; // '\'
const SLASH = 0x2f;
const ROOT = 5;

function unitsOf(b: Buffer, at: number, bytes: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < bytes && at + i + 1 < b.length; i += 2) out.push(b.readUInt16LE(at + i));
  return out;
}

function toBytes(units: number[]): Buffer {
  const b = Buffer.alloc(units.length * 2);
  units.forEach((u, i) => b.writeUInt16LE(u, 2 * i));
  return utf16ToBytes(b);
}

const at = (p: number[], i: number): number => (i < p.length ? p[i] : 0);

/** search_absolute: follows a path from the root, fixing each name's case, while it runs through plain directories. */
async function searchAbsolute(r: PathResolver, path: number[], isdir: boolean): Promise<Buffer | undefined> {
  const count = path.length;
  let ni: { isDirectory: boolean; isReparse: boolean } | undefined;
  let dir = ROOT;
  let start = 0;
  do {
    let len = 0;
    while (start + len < count && path[start + len] !== BS) len++;
    const found = len > 0 ? await r.findIgnoreCase(dir, path.slice(start, start + Math.min(len, 255))) : undefined;
    ni = undefined;
    if (found) {
      for (let i = 0; i < found.name.length && i < len; i++) path[start + i] = found.name[i];
      ni = await r.kind(found.record);
      dir = found.record;
      start += len;
      if (start < count) path[start++] = SLASH;
    }
  } while (ni && ni.isDirectory && !ni.isReparse && start < count);
  if (ni && ((ni.isDirectory ? isdir : !isdir) || ni.isReparse)) return toBytes(path);
  return undefined;
}

/** search_relative: a relative target, resolved from the link's directory. */
async function searchRelative(r: PathResolver, self: number, selfIsDir: boolean, path: number[]): Promise<Buffer | undefined> {
  const count = path.length;
  let cur = await r.parent(self);
  let pos = 0;
  let ok = true;
  let morelinks = false;
  let max = 32;
  while (cur !== undefined && ok && !morelinks && pos < count - 1 && --max) {
    if (count >= pos + 2 && path[pos] === 0x2e && path[pos + 1] === BS) {
      path[pos + 1] = SLASH;
      pos += 2;
    } else if (count >= pos + 3 && path[pos] === 0x2e && path[pos + 1] === 0x2e && path[pos + 2] === BS) {
      path[pos + 2] = SLASH;
      pos += 3;
      cur = cur === ROOT ? undefined : await r.parent(cur);
      if (cur === undefined) ok = false;
    } else {
      let lth = 0;
      while (pos + lth < count && path[pos + lth] !== BS) lth++;
      const found = lth > 0 ? await r.findIgnoreCase(cur, path.slice(pos, pos + Math.min(lth, 255))) : undefined;
      if (!found) {
        ok = false;
        break;
      }
      for (let i = 0; i < found.name.length && i < lth; i++) path[pos + i] = found.name[i];
      const k = await r.kind(found.record);
      if (!k) {
        ok = false;
        break;
      }
      cur = found.record;
      if (k.isReparse) morelinks = true;
      if (pos + lth < count) {
        path[pos + lth] = SLASH;
        pos += lth + 1;
      } else {
        pos += lth;
        if (!morelinks && k.isDirectory !== selfIsDir) ok = false;
      }
    }
  }
  return ok ? toBytes(path) : undefined;
}

const MAPPING_DIR = Buffer.from('.NTFS-3G/');

function joinMount(mnt: Buffer, ...parts: Buffer[]): Buffer {
  return Buffer.concat([mnt, Buffer.from('/'), ...parts]);
}

/** The unmapped target under /.NTFS-3G/, slashes reversed and the drive letter upper-cased. */
function mapped(mnt: Buffer, units: number[]): Buffer | undefined {
  const t = Buffer.from(toBytes(units));
  if (t.length === 0) return undefined;
  for (let i = 0; i < t.length; i++) if (t[i] === BS) t[i] = SLASH;
  if (t.length > 1 && t[1] === 0x3a && t[0] >= 0x61 && t[0] <= 0x7a) t[0] -= 0x20;
  return joinMount(mnt, MAPPING_DIR, t);
}

const DIR_JUNCTION_HEAD = [BS, 0x3f, 0x3f, BS];
const VOL_JUNCTION_HEAD = [...'\\??\\Volume{'].map((c) => c.charCodeAt(0));
const startsWith = (p: number[], head: number[]): boolean => head.every((c, i) => p[i] === c);

/** ntfs_get_fulllink: \??\X:\path (a junction or an absolute symlink) or \??\Volume{...}\ (a volume mount point). */
async function fullLink(r: PathResolver, path: number[], mnt: Buffer, isdir: boolean): Promise<Buffer | undefined> {
  const count = path.length;
  let kind: 'dir' | 'vol' | 'none' = 'none';
  if (count >= 7 && startsWith(path, DIR_JUNCTION_HEAD) && path[4] && path[5] === 0x3a && path[6] === BS) kind = 'dir';
  else if (count >= 12 && startsWith(path, VOL_JUNCTION_HEAD) && path[count - 1] === BS) kind = 'vol';
  let full: Buffer | undefined;
  if (kind === 'dir' && at(path, 7) && !(await r.driveDefined(path[4]))) {
    const t = await searchAbsolute(r, path.slice(7), isdir);
    if (t) full = joinMount(mnt, t);
  }
  if ((kind === 'dir' && !full) || kind === 'vol') full = mapped(mnt, path.slice(4, kind === 'vol' ? count - 1 : count));
  return full;
}

/** ntfs_get_abslink: X:\path or \path (a symlink marked relative, oddly, but absolute in form). */
async function absLink(r: PathResolver, path: number[], mnt: Buffer, isdir: boolean): Promise<Buffer | undefined> {
  const count = path.length;
  let kind: 'full' | 'abs' | 'rejected' = 'rejected';
  if (count >= 3 && path[0] && path[1] === 0x3a && path[2] === BS) kind = 'full';
  else if (at(path, 0) === BS) kind = 'abs';
  let full: Buffer | undefined;
  if ((kind === 'full' && at(path, 3) && !(await r.driveDefined(path[0]))) || kind === 'abs') {
    const t = await searchAbsolute(r, path.slice(kind === 'abs' ? 1 : 3), isdir);
    if (t) full = joinMount(mnt, t);
  }
  if (kind === 'full' && !full) full = mapped(mnt, path);
  return full;
}

/**
 * ntfs_make_symlink: the target ntfs-3g shows for a junction or symlink, or
 * undefined when it shows the "unsupported reparse tag" text instead.
 */
export async function symlinkTarget(r: PathResolver, self: number, isDirectory: boolean, fileAttributes: number, rp: ReparsePoint, mnt: Buffer): Promise<Buffer | undefined> {
  if (!validReparse(rp, isDirectory, fileAttributes)) return undefined;
  const b = rp.raw;
  switch (rp.tag) {
    case ReparseTag.MOUNT_POINT: {
      const offs = b.readUInt16LE(8);
      const lth = b.readUInt16LE(10);
      return fullLink(r, unitsOf(b, 16 + offs, lth), mnt, isDirectory);
    }
    case ReparseTag.SYMLINK: {
      const offs = b.readUInt16LE(8);
      const lth = b.readUInt16LE(10);
      const relative = (b.readUInt32LE(16) & 1) !== 0;
      const path = unitsOf(b, 20 + offs, lth);
      const p0 = b.length >= 20 + offs + 2 ? b.readUInt16LE(20 + offs) : 0;
      const p1 = b.length >= 20 + offs + 4 ? b.readUInt16LE(20 + offs + 2) : 0;
      const kind = p0 === BS ? (p1 === 0x3f || p1 === BS ? 'full' : 'abs') : p1 === 0x3a ? 'abs' : 'rel';
      if (kind === 'full') return relative ? undefined : fullLink(r, path, mnt, isDirectory);
      if (kind === 'abs') return relative ? absLink(r, path, mnt, isDirectory) : undefined;
      return relative ? searchRelative(r, self, isDirectory, path) : undefined;
    }
    case ReparseTag.LX_SYMLINK: {
      const t = b.subarray(12, 8 + b.readUInt16LE(4));
      const nul = t.indexOf(0);
      return Buffer.from(nul < 0 ? t : t.subarray(0, nul));
    }
    default:
      return undefined;
  }
}
