import { realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { CATALOG_DIR_NAME } from './store-layout';

function invalid(message: string): StrataError {
  return new StrataError(Errno.EINVAL, message, { code: GrpcCode.INVALID_ARGUMENT });
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateName(name: string): void {
  if (name === '') return;
  if (!NAME_RE.test(name)) {
    throw invalid(
      `layer name "${name}" is not valid: use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  if (/^[0-9]+$/.test(name)) {
    throw invalid(`layer name "${name}" is all digits and would read as a layer id`);
  }
}

/**
 * Checks a path written by a user (a source path or a filesystem_path)
 * lexically: relative to something, no NUL, no "..". Returns it normalised,
 * without leading or trailing slashes ("" for the root).
 */
function confinedRelative(value: string, what: string, allowAbsolute: boolean): string {
  if (value.includes('\0')) throw invalid(`${what} "${value}" contains a NUL byte`);
  if (!allowAbsolute && value.startsWith('/')) {
    throw invalid(`${what} "${value}" is absolute; it must be relative to the store root`);
  }
  const parts = value.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw invalid(`${what} "${value}" contains ".."`);
  if (value.length > 4096) throw invalid(`${what} is longer than 4096 bytes`);
  return parts.join('/');
}

export interface ParsedSource {
  scheme: 'dir';
  /** Normalised path relative to the store root ("" is the store root itself). */
  relative: string;
}

export function parseSource(source: string): ParsedSource {
  const colon = source.indexOf(':');
  if (colon <= 0) throw invalid(`source "${source}" has no scheme; write dir:<path relative to the store>`);
  const scheme = source.slice(0, colon);
  const rest = source.slice(colon + 1);
  if (scheme === 'oci' || scheme === 'qcow2' || scheme === 'raw') {
    throw new StrataError(Errno.EOPNOTSUPP, `source scheme "${scheme}:" is not supported yet; use dir:`, {
      code: GrpcCode.UNIMPLEMENTED,
    });
  }
  if (scheme !== 'dir') throw invalid(`source "${source}" has unknown scheme "${scheme}:"; use dir:`);
  const relative = confinedRelative(rest, 'source', false);
  if (relative === '') throw invalid(`source "${source}" names the store root itself`);
  if (relative === CATALOG_DIR_NAME || relative.startsWith(`${CATALOG_DIR_NAME}/`)) {
    throw invalid(`source "${source}" points into the catalog folder ${CATALOG_DIR_NAME}`);
  }
  return { scheme: 'dir', relative };
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
    throw invalid(`source ${source} path ${fsPath} leads out of the store through a symlink`);
  }
  if (!statSync(real).isDirectory()) {
    throw new StrataError(Errno.ENOTDIR, `layer root ${source} path ${fsPath} is not a directory`, {
      code: GrpcCode.FAILED_PRECONDITION,
    });
  }
  return real;
}
