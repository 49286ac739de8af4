import { realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { CATALOG_DIR_NAME } from './store-layout';


const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateName(name: string): void {
  if (name === '') return;
  if (!NAME_RE.test(name)) {
    throw StrataError.invalid(
      `layer name "${name}" is not valid: use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  if (/^[0-9]+$/.test(name)) {
    throw StrataError.invalid(`layer name "${name}" is all digits and would read as a layer id`);
  }
}

/**
 * Checks a path written by a user (a source path or a filesystem_path)
 * lexically: relative to something, no NUL, no "..". Returns it normalised,
 * without leading or trailing slashes ("" for the root).
 */
function confinedRelative(value: string, what: string, allowAbsolute: boolean): string {
  if (value.includes('\0')) throw StrataError.invalid(`${what} "${value}" contains a NUL byte`);
  if (!allowAbsolute && value.startsWith('/')) {
    throw StrataError.invalid(`${what} "${value}" is absolute; it must be relative to the store root`);
  }
  const parts = value.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw StrataError.invalid(`${what} "${value}" contains ".."`);
  if (value.length > 4096) throw StrataError.invalid(`${what} is longer than 4096 bytes`);
  return parts.join('/');
}

/**
 * The source schemes: a layer folder, or a VM disk image — qcow2 with its
 * backing chain, raw, VMware VMDK, Hyper-V VHDX, Virtual PC/Azure VHD,
 * VirtualBox VDI, or `image:` which detects the format by its magic.
 */
export const SOURCE_SCHEMES = ['dir', 'qcow2', 'raw', 'vmdk', 'vhdx', 'vhd', 'vdi', 'image'] as const;
export type SourceScheme = (typeof SOURCE_SCHEMES)[number];
export type ImageScheme = Exclude<SourceScheme, 'dir'>;

export interface ParsedSource {
  scheme: SourceScheme;
  /** Normalised path relative to the store root. */
  relative: string;
  /** Image sources: the partition as Linux numbers it (`#2` is vda2); undefined lets the resolver choose. */
  partition: number | undefined;
  /** Image sources: an LVM2 logical volume (`#VG/LV`) instead of a partition. */
  logicalVolume?: { vg: string; lv: string };
  /** qcow2 sources: an internal snapshot by name or id (`qcow2:vm/x.qcow2@before-upgrade`). */
  snapshot?: string;
}

const SCHEME_HELP =
  'write dir:<folder>, or a disk image as qcow2:<image>[@SNAPSHOT][#N], raw:, vmdk:, vhdx:, vhd:, vdi:<image>[#N], or image:<image>[#N] to detect the format ' +
  '(#N a partition as Linux numbers it, or #VG/LV a logical volume), paths relative to the store';

/** Every source kind with what it reads, for help texts. */
export const SOURCE_KINDS: readonly { scheme: SourceScheme; syntax: string; what: string }[] = [
  { scheme: 'dir', syntax: 'dir:FOLDER', what: 'a folder of the store (overlayfs layer rules apply)' },
  { scheme: 'qcow2', syntax: 'qcow2:IMAGE[@SNAPSHOT][#N|#VG/LV]', what: 'a qcow2 image with its backing chain; @SNAPSHOT an internal snapshot' },
  { scheme: 'raw', syntax: 'raw:IMAGE[#N|#VG/LV]', what: 'a raw disk image' },
  { scheme: 'vmdk', syntax: 'vmdk:IMAGE[#N|#VG/LV]', what: 'a VMware VMDK (sparse, flat, streamOptimized; delta disks over their parent)' },
  { scheme: 'vhdx', syntax: 'vhdx:IMAGE[#N|#VG/LV]', what: 'a Hyper-V VHDX (dynamic, fixed, differencing)' },
  { scheme: 'vhd', syntax: 'vhd:IMAGE[#N|#VG/LV]', what: 'a Virtual PC / Azure VHD (fixed, dynamic, differencing)' },
  { scheme: 'vdi', syntax: 'vdi:IMAGE[#N|#VG/LV]', what: 'a VirtualBox VDI (dynamic, static)' },
  { scheme: 'image', syntax: 'image:IMAGE[#N|#VG/LV]', what: 'any of the disk image formats above, detected by its magic' },
];

export function isImageScheme(scheme: SourceScheme): scheme is ImageScheme {
  return scheme !== 'dir';
}

/** LVM2's own rule for VG and LV names. */
const LVM_NAME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,127}$/;

function parseVolume(source: string, text: string): Pick<ParsedSource, 'partition' | 'logicalVolume'> {
  if (/^[0-9]+$/.test(text)) {
    if (!/^[1-9][0-9]{0,3}$/.test(text)) throw StrataError.invalid(`source "${source}": partition "#${text}" is not a number from 1 (as Linux numbers partitions: #2 is vda2)`);
    return { partition: Number(text) };
  }
  const slash = text.indexOf('/');
  const vg = text.slice(0, slash);
  const lv = text.slice(slash + 1);
  if (slash < 0 || !LVM_NAME.test(vg) || !LVM_NAME.test(lv) || vg === '.' || vg === '..' || lv === '.' || lv === '..') {
    throw StrataError.invalid(`source "${source}": "#${text}" is neither a partition number (#2 is vda2) nor a logical volume #VG/LV (e.g. #rhel/root)`);
  }
  return { partition: undefined, logicalVolume: { vg, lv } };
}

export function parseSource(source: string): ParsedSource {
  const colon = source.indexOf(':');
  if (colon <= 0) throw StrataError.invalid(`source "${source}" has no scheme; ${SCHEME_HELP}`);
  const scheme = source.slice(0, colon);
  let rest = source.slice(colon + 1);
  if (scheme === 'oci') throw StrataError.unsupported(`source scheme "oci:" is not supported yet; ${SCHEME_HELP}`);
  if (!(SOURCE_SCHEMES as readonly string[]).includes(scheme)) throw StrataError.invalid(`source "${source}" has unknown scheme "${scheme}:"; ${SCHEME_HELP}`);
  const known = scheme as SourceScheme;
  let volume: Pick<ParsedSource, 'partition' | 'logicalVolume'> = { partition: undefined };
  let snapshot: string | undefined;
  if (isImageScheme(known)) {
    const hash = rest.lastIndexOf('#');
    if (hash >= 0) {
      volume = parseVolume(source, rest.slice(hash + 1));
      rest = rest.slice(0, hash);
    }
    // A snapshot is named after the last '@' of the file name (not of a folder on the way).
    const at = rest.lastIndexOf('@');
    if (known === 'qcow2' && at > rest.lastIndexOf('/')) {
      snapshot = rest.slice(at + 1);
      rest = rest.slice(0, at);
      if (snapshot === '' || snapshot.length > 1024 || [...snapshot].some((c) => c.charCodeAt(0) < 0x20)) throw StrataError.invalid(`source "${source}": snapshot name "@${snapshot}" is empty, too long or has control characters`);
    }
  }
  const relative = confinedRelative(rest, 'source', false);
  if (relative === '') throw StrataError.invalid(`source "${source}" names the store root itself`);
  if (relative === CATALOG_DIR_NAME || relative.startsWith(`${CATALOG_DIR_NAME}/`)) {
    throw StrataError.invalid(`source "${source}" points into the catalog folder ${CATALOG_DIR_NAME}`);
  }
  return { scheme: known, relative, ...volume, ...(snapshot === undefined ? {} : { snapshot }) };
}

export function normaliseFilesystemPath(p: string): string {
  return `/${confinedRelative(p === '' ? '/' : p, 'filesystem_path', true)}`;
}

/**
 * Resolves a layer's root on disk and proves it stays inside the store even
 * after following symlinks. Called at creation and again whenever a chain is
 * opened, because a symlink in the store can change after the layer was made.
 */
export function resolveLayerRoot(storeRoot: string, source: string, filesystemPath: string): string {
  const parsed = parseSource(source);
  if (isImageScheme(parsed.scheme)) {
    throw StrataError.invalid(`source ${source} is a disk image: its root is inside the image, not a folder of the store`);
  }
  const fsPath = normaliseFilesystemPath(filesystemPath);
  const realStore = realpathSync(storeRoot);
  const candidate = path.join(realStore, parsed.relative, fsPath);
  let real: string;
  try {
    real = realpathSync(candidate);
  } catch {
    throw new StrataError(Errno.ENOENT, `layer data ${source}${fsPath === '/' ? '' : ` path ${fsPath}`} does not exist in the store`, {
      code: GrpcCode.FAILED_PRECONDITION,
    });
  }
  if (real !== realStore && !real.startsWith(`${realStore}/`)) {
    throw StrataError.invalid(`source ${source} path ${fsPath} leads out of the store through a symlink`);
  }
  if (!statSync(real).isDirectory()) {
    throw new StrataError(Errno.ENOTDIR, `layer root ${source} path ${fsPath} is not a directory`, {
      code: GrpcCode.FAILED_PRECONDITION,
    });
  }
  return real;
}

/**
 * The real path of an image source's file, proven to stay inside the store
 * after following symlinks (checked at creation and whenever the image is
 * opened, since the store can change).
 */
export function resolveImageFile(storeRoot: string, source: string): string {
  const parsed = parseSource(source);
  if (!isImageScheme(parsed.scheme)) throw StrataError.invalid(`source ${source} is not a disk image`);
  const realStore = realpathSync(storeRoot);
  let real: string;
  try {
    real = realpathSync(path.join(realStore, parsed.relative));
  } catch {
    throw new StrataError(Errno.ENOENT, `disk image ${parsed.relative} does not exist in the store`, { code: GrpcCode.FAILED_PRECONDITION });
  }
  if (!real.startsWith(`${realStore}/`)) throw StrataError.invalid(`source ${source} leads out of the store through a symlink`);
  if (!statSync(real).isFile()) {
    throw new StrataError(Errno.EINVAL, `disk image ${parsed.relative} is not a regular file`, { code: GrpcCode.FAILED_PRECONDITION });
  }
  return real;
}

/** Checks a layer's data exists where its source says, confined to the store: a folder for dir:, a file for images. */
export function checkSourceInStore(storeRoot: string, source: string, filesystemPath: string): void {
  if (isImageScheme(parseSource(source).scheme)) resolveImageFile(storeRoot, source);
  else resolveLayerRoot(storeRoot, source, filesystemPath);
}
