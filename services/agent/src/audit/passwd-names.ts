import { readFileSync } from 'node:fs';

/** An unknown uid makes the file be read again, at most this often. */
const REREAD_MS = 10_000;

/**
 * uid → login name from /etc/passwd, read synchronously and kept: file-open
 * events come by the thousand and must be written as they happen, so no
 * process (`id`) per event. Users only a network directory knows (NSS) are
 * named `uid:N` in those lines.
 */
export class PasswdNames {
  private names = new Map<number, string>();
  private readAt = -Infinity;

  constructor(private readonly file = '/etc/passwd') {}

  nameOf(uid: number): string | undefined {
    const known = this.names.get(uid);
    if (known !== undefined || Date.now() - this.readAt < REREAD_MS) return known;
    this.reread();
    return this.names.get(uid);
  }

  private reread(): void {
    this.readAt = Date.now();
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return;
    }
    const names = new Map<number, string>();
    for (const line of text.split('\n')) {
      const f = line.split(':');
      const uid = Number(f[2]);
      if (f.length >= 3 && f[0] !== '' && Number.isInteger(uid) && !names.has(uid)) names.set(uid, f[0]);
    }
    this.names = names;
  }
}
