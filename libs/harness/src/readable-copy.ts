import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './processes';

/**
 * A copy of this checkout's runtime that every user can read, for a child run
 * as another user (`nobody`): a checkout may live under a private folder (a
 * clone in /root, or in `mktemp -d`), where such a child cannot even load
 * bin/strata. The copy is hard links where it can be (a second, no extra
 * space), a real copy opened up to everyone where it cannot.
 */
export interface ReadableCheckout {
  /** The copy's root: bin/strata, package.json, node_modules, libs, services, proto. */
  root: string;
  /** bin/strata in the copy. */
  bin: string;
  /** A path inside the copy, e.g. `libs/agent-control/dist/index.js`. */
  at(relative: string): string;
  /** Removes the copy; never throws. */
  remove(): void;
}

/** What a strata process or a script requiring its packages loads at run time (no git, no sources' caches). */
const RUNTIME_ENTRIES = ['bin', 'package.json', 'node_modules', 'libs', 'services', 'proto', 'test', 'bench'];
const COPY_TIMEOUT_MS = 120_000;

/** Whether every directory from / down to `dir` lets others through. */
function searchableByAll(dir: string): boolean {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      if ((fs.statSync(d).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (d === path.dirname(d)) return true;
  }
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: COPY_TIMEOUT_MS });
  return { ok: r.status === 0, out: `${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim() };
}

/** Whether some file or directory under `root` is not readable (or searchable) by others: hard links keep the checkout's modes. */
function closedToOthers(root: string): boolean {
  const r = spawnSync('find', [root, '(', '-type', 'f', '!', '-perm', '-o+r', ')', '-o', '(', '-type', 'd', '!', '-perm', '-o+rx', ')', '-print', '-quit'], {
    encoding: 'utf8',
    timeout: COPY_TIMEOUT_MS,
  });
  return r.status !== 0 || r.stdout.trim() !== '';
}

/** Copies the checkout's runtime to a fresh 0755 directory under a temp folder everyone can reach; the caller removes it. */
export function readableCheckout(repo: string = REPO): ReadableCheckout {
  const base = searchableByAll(os.tmpdir()) ? os.tmpdir() : '/tmp';
  const root = fs.mkdtempSync(path.join(base, 'strata-readable-'));
  fs.chmodSync(root, 0o755);
  const entries = RUNTIME_ENTRIES.filter((e) => fs.existsSync(path.join(repo, e))).map((e) => path.join(repo, e));
  const remove = (): void => fs.rmSync(root, { recursive: true, force: true });
  try {
    // Hard links first; a real copy when the checkout is on another filesystem or keeps its files from others.
    if (!run('cp', ['-al', ...entries, root]).ok || closedToOthers(root)) {
      for (const e of fs.readdirSync(root)) fs.rmSync(path.join(root, e), { recursive: true, force: true });
      const copied = run('cp', ['-a', ...entries, root]);
      if (!copied.ok) throw new Error(`copying ${repo} to ${root}: ${copied.out}`);
      const opened = run('chmod', ['-R', 'a+rX', root]);
      if (!opened.ok) throw new Error(`opening ${root} to every user: ${opened.out}`);
    }
  } catch (err) {
    remove();
    throw err;
  }
  return { root, bin: path.join(root, 'bin/strata'), at: (relative) => path.join(root, relative), remove };
}
