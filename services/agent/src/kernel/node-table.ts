import { Errno, StrataError } from '@strata/errors';

/** The ino the kernel session knows the root by. */
export const ROOT_INO = 1n;

/**
 * The inos one mount hands the kernel session, one per path of the layer.
 * They are the session's identities for nodes, not st_ino (which the
 * attributes carry in full): two paths that are hard links of one file get
 * two inos and show the same st_ino, as on overlayfs. An ino is never
 * reused for another path while the mount lives, so a late request about a
 * node can never reach a different file.
 */
export class NodeTable {
  private readonly byKey = new Map<string, bigint>([['/', ROOT_INO]]);
  private readonly byIno = new Map<bigint, string>([[ROOT_INO, '/']]);
  private next = ROOT_INO + 1n;

  /** The ino of the path at `key`, given one on first sight. */
  inoOf(key: string): bigint {
    let ino = this.byKey.get(key);
    if (ino === undefined) {
      ino = this.next++;
      this.byKey.set(key, ino);
      this.byIno.set(ino, key);
    }
    return ino;
  }

  /** The path of an ino; ESTALE for one this table never handed out. */
  keyOf(ino: bigint): string {
    const key = this.byIno.get(ino);
    if (key === undefined) throw new StrataError(Errno.ESTALE, `no node ${ino} in this mount`);
    return key;
  }
}
