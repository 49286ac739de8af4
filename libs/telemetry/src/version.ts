import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Which build this process runs, for `strata version`, the start-up log
 * lines and `strata_build_info`: the version of the root package.json, and
 * the git commit when it can be known — from `build-info.json` beside that
 * package.json (deploy/install.sh writes it), else from the checkout's
 * `.git`. Read once, synchronously and with bounded reads; anything missing
 * or odd leaves the commit out, never fails.
 */
export interface BuildInfo {
  version: string;
  /** 12 hex digits, when known. */
  commit?: string;
  /** The Node.js version running it. */
  node: string;
}

/** The repository (or installed lib/) root, from libs/telemetry/dist. */
const ROOT = path.resolve(__dirname, '../../..');
const MAX_SMALL_FILE = 64 * 1024;
const COMMIT = /^[0-9a-f]{40}$/;

function readSmall(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > MAX_SMALL_FILE) return undefined;
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function versionOf(root: string): string {
  try {
    const pkg = JSON.parse(readSmall(path.join(root, 'package.json')) ?? '') as { name?: unknown; version?: unknown };
    if (pkg.name === 'strata' && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // Not JSON: the version stays unknown.
  }
  return 'unknown';
}

/** The commit a `.git` directory (or a worktree's `.git` file) has checked out. */
function gitCommit(root: string): string | undefined {
  let gitDir = path.join(root, '.git');
  const pointer = readSmall(gitDir);
  if (pointer !== undefined) {
    const m = /^gitdir: (.+)$/m.exec(pointer);
    if (!m) return undefined;
    gitDir = path.resolve(root, m[1].trim());
  }
  const head = readSmall(path.join(gitDir, 'HEAD'))?.trim();
  if (head === undefined) return undefined;
  if (COMMIT.test(head)) return head;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (!ref || ref.includes('..')) return undefined;
  // A worktree keeps its branch refs in the common directory.
  const common = readSmall(path.join(gitDir, 'commondir'))?.trim();
  const dirs = [gitDir, ...(common ? [path.resolve(gitDir, common)] : [])];
  for (const dir of dirs) {
    const loose = readSmall(path.join(dir, ref))?.trim();
    if (loose && COMMIT.test(loose)) return loose;
  }
  for (const dir of dirs) {
    for (const line of (readSmall(path.join(dir, 'packed-refs')) ?? '').split('\n')) {
      const [sha, name] = line.split(' ');
      if (name === ref && COMMIT.test(sha)) return sha;
    }
  }
  return undefined;
}

function commitOf(root: string): string | undefined {
  try {
    const info = JSON.parse(readSmall(path.join(root, 'build-info.json')) ?? 'null') as { commit?: unknown } | null;
    if (typeof info?.commit === 'string' && COMMIT.test(info.commit)) return info.commit;
  } catch {
    // Fall through to the checkout.
  }
  return gitCommit(root);
}

let cached: BuildInfo | undefined;

export function buildInfo(root: string = ROOT): BuildInfo {
  if (root === ROOT && cached) return cached;
  const commit = commitOf(root)?.slice(0, 12);
  const info: BuildInfo = { version: versionOf(root), ...(commit ? { commit } : {}), node: process.versions.node };
  if (root === ROOT) cached = info;
  return info;
}

/** `0.1.0 (commit 1a2b3c4d5e6f, node 20.19.0)`. */
export function versionText(info: BuildInfo = buildInfo()): string {
  return `${info.version} (${info.commit ? `commit ${info.commit}, ` : ''}node ${info.node})`;
}
