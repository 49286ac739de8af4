import * as fs from 'node:fs';
import type { ExpectedChange } from './tree';

/** What one entry's lstat (and readlink) says, as the comparison sees it. */
interface Seen {
  isDir: boolean;
  mode: bigint;
  uid: bigint;
  gid: bigint;
  rdev: bigint;
  size: bigint;
  mtimeNs: bigint;
  target?: string;
}

/** Paths are bytes; a latin1 string holds any byte sequence one to one. */
const key = (b: Buffer): string => b.toString('latin1');

/**
 * Every entry below `root` with its lstat fields (symlink targets read),
 * directory by directory, the entries of one directory asked for at once:
 * what virt-diff does in its appliance (readdir and lstatnslist of each
 * directory, of the whole tree, before comparing anything).
 */
async function walkTree(root: string): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const rootBytes = Buffer.from(root);
  const visit = async (rel: Buffer): Promise<void> => {
    const dir = Buffer.concat([rootBytes, rel]);
    const names = await fs.promises.readdir(dir, { encoding: 'buffer' });
    const paths = names.map((n) => Buffer.concat([rel, Buffer.from('/'), n]));
    const seen = await Promise.all(
      paths.map(async (p): Promise<Seen> => {
        const full = Buffer.concat([rootBytes, p]);
        const st = await fs.promises.lstat(full, { bigint: true });
        const target = st.isSymbolicLink() ? key(await fs.promises.readlink(full, { encoding: 'buffer' })) : undefined;
        return { isDir: st.isDirectory(), mode: st.mode, uid: st.uid, gid: st.gid, rdev: st.rdev, size: st.size, mtimeNs: st.mtimeNs, target };
      }),
    );
    const subdirs: Buffer[] = [];
    paths.forEach((p, i) => {
      out.set(key(p), seen[i]);
      if (seen[i].isDir) subdirs.push(p);
    });
    for (const d of subdirs) await visit(d);
  };
  await visit(Buffer.alloc(0));
  return out;
}

/**
 * strata diff's rules (after containerd/continuity) on lstat fields: type
 * and mode, owner, device number, and for non-directories size, mtime and
 * link target. virt-diff itself also reports directories whose mtime or
 * size changed and compares ctimes and xattrs; the same rules on every
 * side are what makes the three answers comparable.
 */
function differs(a: Seen, b: Seen): boolean {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.rdev !== b.rdev) return true;
  if (a.isDir && b.isDir) return false;
  return a.size !== b.size || a.mtimeNs !== b.mtimeNs || a.target !== b.target;
}

const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/'));

/**
 * virt-diff's approach on two mounted trees: walk both whole, then compare
 * the two lists. A deleted subtree is reported once, at its top (where the
 * parent is still a directory on the new side); an added one entry by entry.
 * Paths come back as latin1 strings of their bytes.
 */
export async function walkBoth(fromRoot: string, toRoot: string): Promise<ExpectedChange[]> {
  const a = await walkTree(fromRoot);
  const b = await walkTree(toRoot);
  const out: ExpectedChange[] = [];
  for (const [p, sb] of b) {
    const sa = a.get(p);
    if (!sa) out.push({ path: p, kind: 'added' });
    else if (differs(sa, sb)) out.push({ path: p, kind: 'modified' });
  }
  for (const p of a.keys()) {
    if (b.has(p)) continue;
    const parent = parentOf(p);
    if (parent === '' || b.get(parent)?.isDir) out.push({ path: p, kind: 'deleted' });
  }
  return out;
}
