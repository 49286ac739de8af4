/**
 * What the store view's mounted tests share: a temp store with its identity
 * marker and files, a mountpoint beside it, the identities a resolver's maps
 * name, and the whole-file map of a `dir:` file. Test support only.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExtentMap, StoreFileIdentity, StoreIdentity } from '@strata/client';
import type { Attr } from '@strata/protocol';

const ADDON = path.join(path.dirname(require.resolve('@strata/fuse-kernel/package.json')), 'build/Release/fuse_kernel.node');

/** Why a test that mounts cannot run here, or false. */
export const mountSkip: string | false =
  process.getuid?.() !== 0 || !fs.existsSync('/dev/fuse') ? 'needs root and /dev/fuse' : fs.existsSync(ADDON) ? false : 'needs the fuse-kernel addon built';

/** A regular file's or directory's attributes as a map or stat names them (times 0). */
export function testAttr(ino: number, mode: number, size: number): Attr {
  return { ino, mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size, blocks: Math.ceil(size / 512), blksize: 4096, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 };
}

export class MountedStore {
  readonly dir: string;
  readonly mnt: string;
  readonly storeId = randomUUID();

  /** `files`: paths relative to the store (folders made as needed) and their bytes. */
  constructor(prefix: string, files: Readonly<Record<string, Buffer>>) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
    this.mnt = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-mnt-`));
    fs.mkdirSync(path.join(this.dir, '.strata'));
    fs.writeFileSync(path.join(this.dir, '.strata/store-id'), this.storeId);
    for (const [rel, bytes] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(this.dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(this.dir, rel), bytes);
    }
  }

  /** A store file's identity as a resolver's map names it. */
  identityOf(rel: string): StoreFileIdentity {
    const st = fs.lstatSync(path.join(this.dir, rel), { bigint: true });
    return { path: rel, dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeSec: Number(st.mtimeNs / 1_000_000_000n), mtimeNsec: Number(st.mtimeNs % 1_000_000_000n) };
  }

  /** The store's identity, as GetStoreIdentity answers it. */
  identity(): StoreIdentity {
    return { storeId: this.storeId, marker: this.identityOf('.strata/store-id') };
  }

  /** The map of a `dir:` file that is the store file `rel` whole, from offset (a 64 MiB window at most, as the resolver's). */
  wholeFileMap(rel: string, ino: number, offset: number): ExtentMap {
    const id = this.identityOf(rel);
    const n = Math.min(64 << 20, id.size - offset);
    return { storeId: this.storeId, attr: testAttr(ino, 0o100644, id.size), files: [id], extents: [{ kind: 'data', offset, length: n, file: 0, fileOffset: offset }], offset, length: n, eof: offset + n >= id.size };
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.rmSync(this.mnt, { recursive: true, force: true });
  }
}
