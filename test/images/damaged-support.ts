import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import { ImageSource, Projection, type WalkEntry, type WalkError } from '@strata/traversal';

/**
 * Damaged ext2/3/4 images made by the tests (mke2fs, debugfs, byte edits)
 * and read two ways, path by path: by the kernel's read-only loop mount and
 * by strata. A tree maps each path to what it shows: `mode size nlink uid
 * gid mtime ino` and the link target, or the errno its lookup fails with;
 * a directory whose listing fails adds `<dir>/*` with that errno.
 */
export type DamagedTree = Map<string, string>;

/** Every child process is bounded: a damaged image must never hang a test. */
const TOOL_TIMEOUT_MS = 30_000;

export function tool(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], input, timeout: TOOL_TIMEOUT_MS });
}

export function hasTools(...names: string[]): boolean {
  return names.every((n) => {
    try {
      execFileSync('sh', ['-c', `command -v ${n}`], { stdio: 'ignore', timeout: TOOL_TIMEOUT_MS });
      return true;
    } catch {
      return false;
    }
  });
}

/** Root and loop devices: what the kernel's side of the comparison needs. */
export function canLoopMount(): boolean {
  return process.getuid?.() === 0 && fs.existsSync('/dev/loop-control') && hasTools('mke2fs', 'debugfs', 'mount', 'losetup');
}

/** debugfs with write access; its stderr banner is dropped, a failed request throws. */
export function debugfsWrite(image: string, ...requests: string[]): string {
  return tool('debugfs', ['-w', '-f', '-', image], `${requests.join('\n')}\n`);
}

export function debugfsRead(image: string, request: string): string {
  return tool('debugfs', ['-R', request, image]);
}

/** Byte offset of an inode in the image (debugfs imap). */
export function inodeOffset(image: string, spec: string, blockSize: number): number {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfsRead(image, `imap ${spec}`));
  if (!m) throw new Error(`imap ${spec} failed`);
  return Number(m[1]) * blockSize + parseInt(m[2], 16);
}

/** Inode number of a path (debugfs stat's first line). */
export function inodeOf(image: string, p: string): number {
  const m = /Inode: (\d+)/.exec(debugfsRead(image, `stat ${p}`));
  if (!m) throw new Error(`no inode for ${p}`);
  return Number(m[1]);
}

/** Physical block of a file's logical block (debugfs bmap). */
export function blockOf(image: string, p: string, lblk: number): number {
  return Number(debugfsRead(image, `bmap ${p} ${lblk}`).trim());
}

export function patch(image: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(image, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

export function readBytes(image: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(image, 'r');
  try {
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A small ext4 (or ext2/3) image of `tree` entries made by mke2fs -d:
 * /a, /d/{one,two,three}, /big/n0..n{big-1} (hashed), /sub/deep/x, /link.
 */
export function makeImage(file: string, options: { mkfs?: string[]; big?: number; sizeMiB?: number } = {}): void {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-damaged-tree-'));
  try {
    fs.writeFileSync(path.join(tree, 'a'), 'alpha\n');
    fs.mkdirSync(path.join(tree, 'd'));
    for (const n of ['one', 'two', 'three']) fs.writeFileSync(path.join(tree, 'd', n), `${n}\n`.repeat(10));
    fs.mkdirSync(path.join(tree, 'big'));
    for (let i = 0; i < (options.big ?? 300); i++) fs.writeFileSync(path.join(tree, 'big', `n${i}`), '');
    fs.mkdirSync(path.join(tree, 'sub', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'sub', 'deep', 'x'), 'x'.repeat(3000));
    fs.symlinkSync('d/one', path.join(tree, 'link'));
    fs.rmSync(file, { force: true });
    tool('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-N', '512', ...(options.mkfs ?? []), '-d', tree, file, `${options.sizeMiB ?? 8}M`]);
    // mke2fs -d writes linear directories; e2fsck -D indexes those of more than a block, as the kernel would have.
    try {
      tool('e2fsck', ['-fyD', file]);
    } catch (err) {
      // Exit status 1: the filesystem was changed (the directories were indexed), which is the point.
      if ((err as { status?: unknown }).status !== 1) throw err;
    }
  } finally {
    fs.rmSync(tree, { recursive: true, force: true });
  }
}

function errnoOf(err: unknown): number {
  const n = (err as { errno?: unknown }).errno;
  return typeof n === 'number' ? Math.abs(n) : -1;
}

function describeStat(st: fs.Stats, link: string | undefined): string {
  const fields = [st.mode.toString(8), st.size, st.nlink, st.uid, st.gid, Math.floor(st.mtimeMs / 1000), st.ino];
  return link === undefined ? fields.join(' ') : `${fields.join(' ')} -> ${link}`;
}

/** Entries visited at most on either side: a damaged image can claim anything. */
const MAX_ENTRIES = 20_000;

/** The kernel's answer: a read-only loop mount, every path lstat'ed, every failure kept with its errno. */
export function kernelTree(image: string): DamagedTree | { mountErrno: string } {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-damaged-mnt-'));
  try {
    try {
      tool('mount', ['-t', 'ext4', '-o', 'ro,loop', image, mnt]);
    } catch (err) {
      return { mountErrno: String((err as { stderr?: unknown }).stderr ?? err) };
    }
    try {
      const tree: DamagedTree = new Map();
      const visit = (rel: string): void => {
        if (tree.size > MAX_ENTRIES) return;
        let names: Buffer[];
        try {
          names = fs.readdirSync(Buffer.concat([Buffer.from(mnt), Buffer.from(rel, 'latin1')]), { encoding: 'buffer' });
        } catch (err) {
          tree.set(`${rel === '' ? '' : rel}/*`, `E${errnoOf(err)}`);
          return;
        }
        for (const n of names) {
          const childRel = `${rel}/${n.toString('latin1')}`;
          const full = Buffer.concat([Buffer.from(mnt), Buffer.from(`${rel}/`, 'latin1'), n]);
          let st: fs.Stats;
          try {
            st = fs.lstatSync(full);
          } catch (err) {
            tree.set(childRel, `E${errnoOf(err)}`);
            continue;
          }
          let link: string | undefined;
          if (st.isSymbolicLink()) {
            try {
              link = fs.readlinkSync(full, { encoding: 'buffer' }).toString('hex');
            } catch (err) {
              link = `E${errnoOf(err)}`;
            }
          }
          tree.set(childRel, describeStat(st, link));
          if (st.isDirectory() && childRel !== '/lost+found') visit(childRel);
        }
      };
      tree.set('/', describeStat(fs.lstatSync(mnt), undefined));
      visit('');
      return tree;
    } finally {
      tool('umount', [mnt]);
    }
  } finally {
    fs.rmdirSync(mnt);
  }
}

/** strata's answer: the image as a raw layer, walked to the end past every damaged path. */
export async function strataTree(storeRoot: string, image: string, log?: (e: Record<string, unknown>) => void): Promise<DamagedTree | { openErrno: number; message: string }> {
  let src: ImageSource;
  try {
    src = await ImageSource.open({ storeRoot, image, format: 'raw', ...(log ? { log } : {}) });
  } catch (err) {
    if (!isStrataError(err)) throw err;
    return { openErrno: err.errno, message: err.message };
  }
  const p = new Projection([src], log ? { log } : {});
  try {
    const tree: DamagedTree = new Map();
    for await (const batch of p.walkAll('/', { includeLinkTargets: true })) {
      for (const e of batch) {
        if (tree.size > MAX_ENTRIES) return tree;
        const key = e.path.toString('latin1');
        if (key.startsWith('/lost+found/')) continue;
        if ('error' in e) {
          const err = (e as WalkError).error;
          // A WalkError on a path already listed is its listing failing.
          tree.set(tree.has(key) ? `${key === '/' ? '' : key}/*` : key, `E${err.errno}`);
          continue;
        }
        const w = e as WalkEntry;
        const a = w.attr;
        const fields = [a.mode.toString(8), a.size, a.nlink, a.uid, a.gid, a.mtimeSec, a.ino];
        let link: string | undefined;
        if ((a.mode & 0o170000) === 0o120000) {
          try {
            link = (await p.readlink(w.path)).toString('hex');
          } catch (err) {
            link = `E${isStrataError(err) ? err.errno : -1}`;
          }
        }
        tree.set(key, link === undefined ? fields.join(' ') : `${fields.join(' ')} -> ${link}`);
      }
    }
    return tree;
  } finally {
    await p.close();
  }
}

/** Lines naming every path where the two trees differ (empty when they agree). */
export function differences(kernel: DamagedTree, strata: DamagedTree): string[] {
  const out: string[] = [];
  for (const [p, k] of kernel) {
    const s = strata.get(p);
    if (s === undefined) out.push(`${p}: kernel ${k}, strata nothing`);
    else if (s !== k) out.push(`${p}: kernel ${k}, strata ${s}`);
  }
  for (const [p, s] of strata) if (!kernel.has(p)) out.push(`${p}: kernel nothing, strata ${s}`);
  return out;
}
