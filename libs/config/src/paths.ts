import * as fs from 'node:fs';
import * as path from 'node:path';

export interface DirectoryRules {
  /** A missing directory is fine when it can be created (its nearest existing parent is a writable directory). */
  mayCreate: boolean;
  /** What the service does with it: an existing directory must allow that. */
  access: 'read' | 'write';
}

function stat(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

function allows(p: string, mode: number): boolean {
  try {
    if (mode === (fs.constants.R_OK | fs.constants.X_OK)) {
      // Really open it: access(2) judges by the real ids without capabilities, so a
      // resolver that reads the store by CAP_DAC_READ_SEARCH alone would be told no.
      fs.opendirSync(p).closeSync();
    } else {
      fs.accessSync(p, mode);
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a service can use `dir` as it will at start-up, without creating
 * anything (--check-config changes nothing). The problem, or undefined.
 */
export function directoryProblem(dir: string, rules: DirectoryRules): string | undefined {
  const wanted = rules.access === 'read' ? fs.constants.R_OK | fs.constants.X_OK : fs.constants.W_OK | fs.constants.X_OK;
  const st = stat(dir);
  if (st) {
    if (!st.isDirectory()) return `${dir} is not a directory`;
    return allows(dir, wanted) ? undefined : `${dir} is not ${rules.access === 'read' ? 'readable' : 'writable'}`;
  }
  if (!rules.mayCreate) return `${dir} does not exist`;
  let parent = path.dirname(dir);
  for (;;) {
    const pst = stat(parent);
    if (pst) {
      if (!pst.isDirectory()) return `${dir} cannot be created: ${parent} is not a directory`;
      return allows(parent, fs.constants.W_OK | fs.constants.X_OK) ? undefined : `${dir} cannot be created: ${parent} is not writable`;
    }
    const up = path.dirname(parent);
    // The root always exists; this only guards a path that never reaches it.
    if (up === parent) return `${dir} cannot be created`;
    parent = up;
  }
}

/** A file the service reads at start (a certificate, key or CA): it must be there and be a regular file. The problem, or undefined. */
export function fileProblem(file: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Node's message already names the call and the path (EACCES: permission denied, stat '...').
    return e.code === 'ENOENT' ? `${file} does not exist` : e.message;
  }
  return st.isFile() ? undefined : `${file} is not a file`;
}
