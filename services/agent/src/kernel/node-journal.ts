import * as fs from 'node:fs';
import { Errno, StrataError } from '@strata/errors';

/**
 * A mount's node table on disk, so that an agent taking the mount over
 * knows the path of every ino the kernel may still name.
 *
 * Text, one line each: the header `strata-nodes 1`, then `n NEXT` (the
 * next ino the table would hand out: never reused, even for a path swept
 * since) and `+ INO KEY` (KEY a JSON string: latin1 keys hold any byte).
 * New inos are appended with one write(2) each, before the answer naming
 * them can reach the kernel: the page cache outlives a crashed process, so
 * what the kernel knows is on file. At each sweep the file is rewritten
 * with only what the table kept (written beside it, then renamed over it).
 * A crash cannot tear a line: a write(2) of one line to a regular file
 * either happened or did not. A power loss takes the mounts with it.
 */

const HEADER = 'strata-nodes 1\n';
/** A journal larger than this is refused rather than read (the table's own bound is far below it). */
const MAX_BYTES = 1 << 30;
/** Inos (and the next one) stay below this: the node table keeps them as numbers. */
const MAX_INO = BigInt(Number.MAX_SAFE_INTEGER);

export interface JournalStats {
  writes: number;
  bytes: number;
  /** Time spent in write(2) for new inos, nanoseconds. */
  appendNs: number;
  rewrites: number;
  rewriteMs: number;
}

export interface JournalContents {
  next: bigint;
  nodes: Map<bigint, string>;
}

function line(ino: bigint | number, key: string): string {
  return `+ ${ino} ${JSON.stringify(key)}\n`;
}

export class NodeJournal {
  readonly stats: JournalStats = { writes: 0, bytes: 0, appendNs: 0, rewrites: 0, rewriteMs: 0 };
  private fd: number;

  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** A journal of `nodes` (replacing any file there), appended to from then on. */
  static create(file: string, next: bigint | number, nodes: Iterable<[bigint | number, string]>): NodeJournal {
    const j = new NodeJournal(file, -1);
    j.fd = j.writeWhole(next, nodes);
    return j;
  }

  /** Appends one new ino: one write(2). */
  append(ino: bigint | number, key: string): void {
    this.write(line(ino, key));
  }

  /** Appends several with one write(2). */
  appendMany(lines: readonly [bigint | number, string][]): void {
    if (lines.length === 0) return;
    this.write(lines.map(([ino, key]) => line(ino, key)).join(''));
  }

  private write(text: string): void {
    if (this.fd < 0) return;
    const t0 = process.hrtime.bigint();
    const buf = Buffer.from(text, 'utf8');
    fs.writeSync(this.fd, buf);
    this.stats.appendNs += Number(process.hrtime.bigint() - t0);
    this.stats.writes++;
    this.stats.bytes += buf.length;
  }

  /** Replaces the file with exactly `nodes` (atomically) and appends to the new one. */
  rewrite(next: bigint | number, nodes: Iterable<[bigint | number, string]>): void {
    if (this.fd < 0) return;
    const t0 = performance.now();
    const old = this.fd;
    this.fd = this.writeWhole(next, nodes);
    fs.closeSync(old);
    this.stats.rewrites++;
    this.stats.rewriteMs += performance.now() - t0;
  }

  private writeWhole(next: bigint | number, nodes: Iterable<[bigint | number, string]>): number {
    const tmp = `${this.file}.new`;
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND, 0o600);
    try {
      let chunk = `${HEADER}n ${next}\n`;
      for (const [ino, key] of nodes) {
        chunk += line(ino, key);
        if (chunk.length >= 1 << 20) {
          fs.writeSync(fd, chunk);
          chunk = '';
        }
      }
      fs.writeSync(fd, chunk);
      fs.renameSync(tmp, this.file);
      return fd;
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw StrataError.from(err, `writing the node journal ${this.file}`);
    }
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  /** The journal gone with its mount. */
  remove(): void {
    this.close();
    fs.rmSync(this.file, { force: true });
  }

  /**
   * What a journal holds. EUCLEAN for one that is not a journal of this
   * format or has a damaged line (a last line without its newline is a
   * write that never happened, and ignored).
   */
  static read(file: string): JournalContents {
    let text: string;
    try {
      const st = fs.statSync(file);
      if (st.size > MAX_BYTES) throw new StrataError(Errno.EUCLEAN, `node journal ${file} is ${st.size} bytes: larger than any this agent writes`);
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw StrataError.from(err, `node journal ${file}`);
    }
    const bad = (why: string): StrataError => new StrataError(Errno.EUCLEAN, `node journal ${file}: ${why}`);
    if (!text.startsWith(HEADER)) throw bad('not a strata node journal of version 1');
    const lines = text.slice(HEADER.length).split('\n');
    // The part after the last newline: empty, or a write cut short.
    lines.pop();
    let next = 2n;
    const nodes = new Map<bigint, string>();
    for (const [i, l] of lines.entries()) {
      const m = /^n (\d{1,20})$/.exec(l);
      if (m) {
        next = BigInt(m[1]);
        // The table counts inos as numbers: an agent never gets near 2^53.
        if (next > MAX_INO) throw bad(`line ${i + 2} names an ino beyond 2^53`);
        continue;
      }
      const e = /^\+ (\d{1,20}) (".*")$/.exec(l);
      if (!e) throw bad(`line ${i + 2} is not an entry`);
      let key: unknown;
      try {
        key = JSON.parse(e[2]);
      } catch {
        key = undefined;
      }
      if (typeof key !== 'string' || !key.startsWith('/')) throw bad(`line ${i + 2} has no path`);
      const ino = BigInt(e[1]);
      if (ino >= MAX_INO) throw bad(`line ${i + 2} names an ino beyond 2^53`);
      nodes.set(ino, key);
      if (ino >= next) next = ino + 1n;
    }
    return { next, nodes };
  }
}
