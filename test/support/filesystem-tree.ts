import { createHash } from 'node:crypto';
import type { Filesystem } from '@strata/filesystem';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '@strata/traversal';
import { windowsOf, type EntryInfo, type Tree } from './tree-snapshot';

/** A failure of the reader on one object, kept instead of aborting the walk (damage is per object). */
export interface ReaderFailure {
  path: string;
  op: string;
  message: string;
}

/**
 * Reads a filesystem reader's whole tree in the shape readKernelTree gives
 * for a kernel mount, so compareTrees can put the two side by side.
 * Failures are collected per path; a failed node is left out of the tree.
 */
export async function readFilesystemTree(fs: Filesystem, withContent = true, skip: (rel: Buffer) => boolean = () => false): Promise<{ tree: Tree; failures: ReaderFailure[] }> {
  const tree: Tree = new Map();
  const failures: ReaderFailure[] = [];
  const fail = (rel: Buffer, op: string, err: unknown): void => {
    failures.push({ path: rel.toString('latin1'), op, message: err instanceof Error ? err.message : String(err) });
  };
  const visit = async (rel: Buffer, handle: number): Promise<void> => {
    if (skip(rel)) return;
    let node;
    try {
      node = await fs.node(handle);
    } catch (err) {
      fail(rel, 'node', err);
      return;
    }
    let xattrs = '';
    try {
      xattrs = (await fs.xattrs(handle))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map((x) => `${x.name}=${x.value.toString('hex')}`)
        .join(',');
    } catch (err) {
      fail(rel, 'xattrs', err);
    }
    const info: EntryInfo = {
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      size: node.size,
      blocks: node.blocks,
      nlink: node.nlink,
      rdev: node.rdev,
      mtimeNs: node.mtimeNs,
      ino: node.ino,
      xattrs,
    };
    const type = node.mode & S_IFMT;
    try {
      if (type === S_IFLNK) info.link = (await fs.readlink(handle)).toString('hex');
      if (type === S_IFREG && withContent) {
        const h = createHash('sha256');
        for (const [off, len] of windowsOf(node.size)) {
          for (let pos = off; pos < off + len; ) {
            const data = await fs.read(handle, pos, Math.min(8 << 20, off + len - pos));
            h.update(data);
            pos += data.length;
            if (data.length === 0) break;
          }
        }
        info.content = h.digest('hex');
      }
    } catch (err) {
      fail(rel, type === S_IFLNK ? 'readlink' : 'read', err);
    }
    tree.set(rel.toString('latin1'), info);
    if (type !== S_IFDIR) return;
    let entries;
    try {
      entries = await fs.readdir(handle);
    } catch (err) {
      fail(rel, 'readdir', err);
      return;
    }
    for (const e of entries) {
      const child = rel.length === 1 ? Buffer.concat([rel, e.name]) : Buffer.concat([rel, Buffer.from('/'), e.name]);
      await visit(child, e.handle);
    }
  };
  await visit(Buffer.from('/'), fs.rootHandle);
  return { tree, failures };
}
