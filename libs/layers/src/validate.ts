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

/** The source schemes: a layer folder, or a VM disk image (qcow2 with its backing chain, or raw). */
export const SOURCE_SCHEMES = ['dir', 'qcow2', 'raw'] as const;
export type SourceScheme = (typeof SOURCE_SCHEMES)[number];

export interface ParsedSource {
  scheme: SourceScheme;
  /** Normalised path relative to the store root. */
  relative: string;
  /** Image sources: the partition as Linux numbers it (`#2` is vda2); undefined lets the resolver choose. */
  partition: number | undefined;
}

const SCHEME_HELP = 'write dir:<folder>, qcow2:<image>[#N] or raw:<image>[#N], paths relative to the store';

export function isImageScheme(scheme: SourceScheme): scheme is 'qcow2' | 'raw' {
  return scheme === 'qcow2' || scheme === 'raw';
}

export function parseSource(source: string): ParsedSource {
  const colon = source.indexOf(':');
  if (colon <= 0) throw StrataError.invalid(`source "${source}" has no scheme; ${SCHEME_HELP}`);
  const scheme = source.slice(0, colon);
  let rest = source.slice(colon + 1);
  if (scheme === 'oci') throw StrataError.unsupported(`source scheme "oci:" is not supported yet; ${SCHEME_HELP}`);
  if (!(SOURCE_SCHEMES as readonly string[]).includes(scheme)) throw StrataError.invalid(`source "${source}" has unknown scheme "${scheme}:"; ${SCHEME_HELP}`);
  const known = scheme as SourceScheme;
  let partition: number | undefined;
  if (isImageScheme(known)) {
    const hash = rest.lastIndexOf('#');
    if (hash >= 0) {
      const n = rest.slice(hash + 1);
      if (!/^[1-9][0-9]{0,3}$/.test(n)) throw StrataError.invalid(`source "${source}": partition "#${n}" is not a number from 1 (as Linux numbers partitions: #2 is vda2)`);
      partition = Number(n);
      rest = rest.slice(0, hash);
    }
  }
  const relative = confinedRelative(rest, 'source', false);
  if (relative === '') throw StrataError.invalid(`source "${source}" names the store root itself`);
  if (relative === CATALOG_DIR_NAME || relative.startsWith(`${CATALOG_DIR_NAME}/`)) {
    throw StrataError.invalid(`source "${source}" points into the catalog folder ${CATALOG_DIR_NAME}`);
  }
  return { scheme: known, relative, partition };
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
