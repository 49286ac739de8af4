import { StrataError, errnoName } from '@strata/errors';
import { isDirMode, isLinkMode, isRegMode } from '@strata/posix';
import type { Attr } from './attr';
import { Projection, type WalkEntry } from './projection';
import type { LayerSource } from './source/layer-source';

/** One damaged object found by a deep check. */
export interface DamageFinding {
  /** Where in the tree (absolute inside the layer). */
  path: Buffer;
  /** st_ino when the object's attributes could be read (the message names the inode otherwise, where the reader knows it). */
  ino?: number;
  /** What could not be read: the entry itself, its listing, its content, its link target or its xattrs. */
  what: 'entry' | 'listing' | 'content' | 'link' | 'xattrs';
  errno: number;
  errnoName: string;
  message: string;
}

export interface DeepCheckOptions {
  /** Read every regular file's content too (default true): a damaged extent tree or data block shows only there. */
  content?: boolean;
  /** Findings kept at most (default 10 000); the count goes on. */
  maxFindings?: number;
  /** Told of every object checked, for progress. */
  onObject?: (path: Buffer) => void;
  /** Stops the check early (the report says so). */
  signal?: AbortSignal;
}

export interface DeepCheckReport {
  /** Objects visited (entries, damaged ones included). */
  objects: number;
  /** Bytes of file content read. */
  bytes: number;
  /** Every damaged object found, in walk order, up to maxFindings. */
  findings: DamageFinding[];
  /** Damaged objects found in all (more than findings.length when it was cut). */
  damaged: number;
  /** The check was stopped by its signal before the end of the tree. */
  aborted: boolean;
}

/** Content read per call: bounded memory whatever a file claims. */
const CHUNK = 1 << 20;
const DEFAULT_MAX_FINDINGS = 10_000;

/**
 * What a forensic examiner runs first on a disk: the whole tree of one
 * layer walked through its source, every object's entry, listing, link
 * target, xattrs and (by default) content read, and every failure kept
 * with its path, what it was and the errno, never stopping at one. Only the
 * layer's root failing to open fails the check itself.
 */
export async function deepCheck(source: LayerSource, options: DeepCheckOptions = {}): Promise<DeepCheckReport> {
  const projection = new Projection([source], { dirCacheEntries: 0 });
  const max = options.maxFindings ?? DEFAULT_MAX_FINDINGS;
  const report: DeepCheckReport = { objects: 0, bytes: 0, findings: [], damaged: 0, aborted: false };
  // walkAll reports a directory's failed listing right after the directory's own entry.
  let lastDir: string | undefined;
  const found = (path: Buffer, what: DamageFinding['what'], err: unknown, attr?: Attr): void => {
    const e = StrataError.from(err);
    report.damaged++;
    if (report.findings.length >= max) return;
    report.findings.push({ path, ...(attr ? { ino: attr.ino } : {}), what, errno: e.errno, errnoName: errnoName(e.errno), message: e.message });
  };
  for await (const batch of projection.walkAll('/', { includeLinkTargets: false })) {
    for (const e of batch) {
      if (options.signal?.aborted) {
        report.aborted = true;
        return report;
      }
      const key = e.path.toString('latin1');
      if ('error' in e) {
        const listing = key === lastDir;
        found(e.path, listing ? 'listing' : 'entry', e.error);
        if (!listing) report.objects++;
        lastDir = undefined;
        continue;
      }
      lastDir = isDirMode(e.attr.mode) ? key : undefined;
      report.objects++;
      options.onObject?.(e.path);
      await checkObject(projection, e, options.content ?? true, report, found);
    }
  }
  return report;
}

async function checkObject(
  p: Projection,
  e: WalkEntry,
  content: boolean,
  report: DeepCheckReport,
  found: (path: Buffer, what: DamageFinding['what'], err: unknown, attr?: Attr) => void,
): Promise<void> {
  try {
    await p.listXattr(e.path);
  } catch (err) {
    found(e.path, 'xattrs', err, e.attr);
  }
  if (isLinkMode(e.attr.mode)) {
    try {
      await p.readlink(e.path);
    } catch (err) {
      found(e.path, 'link', err, e.attr);
    }
  }
  if (!content || !isRegMode(e.attr.mode)) return;
  for (let pos = 0; pos < e.attr.size; ) {
    let r;
    try {
      r = await p.read(e.path, pos, Math.min(CHUNK, e.attr.size - pos));
    } catch (err) {
      found(e.path, 'content', err, e.attr);
      return;
    }
    report.bytes += r.data.length;
    if (r.data.length === 0 || r.eof) return;
    pos += r.data.length;
  }
}
