import * as fs from 'node:fs';
import * as path from 'node:path';

export type AuditResult = 'ok' | 'denied' | 'failed';

/** One security event: who did (or was refused) what, on which layer. */
export interface AuditEvent {
  /** The kind of event: `layer.change`, `policy.change`, `access.denied`, `mount`, ... */
  event: string;
  /** Who: a certificate identity, a host user (`unix-user:alice`); null when the caller has none. */
  identity: string | null;
  /** What was asked: the RPC (`CreateLayer`, `Grant`, `Session.read`) or the agent's operation. */
  action: string;
  /** The layer as the request named it (an id, a name, a `prefix*`). */
  layer?: string;
  result: AuditResult;
  /** Why it was denied or failed. */
  reason?: string;
  /** Anything else the event needs (a mountpoint, a path, a permission). */
  detail?: Readonly<Record<string, string | number | boolean>>;
}

export interface AuditAppendOptions {
  /**
   * Collapse repeats: the first of identical events within the window is
   * written at once, the rest are counted and written as one line with
   * `count` when the window ends. For events a client can repeat at will
   * (denials), so a denied mount cannot fill the disk.
   */
  coalesce?: boolean;
}

export interface AuditLogOptions {
  /** Told about a file that cannot be opened or written (once per failure, not per event); default: ignored. */
  onError?: (err: Error, file: string) => void;
  /** The repeat window of coalesced events (default 1000 ms). */
  coalesceMs?: number;
  now?: () => number;
}

interface Pending {
  event: AuditEvent;
  count: number;
  lastAt: number;
  timer: NodeJS.Timeout;
}

/** A failed file is tried again when an event comes at least this long after the failure. */
const RETRY_MS = 1000;

/**
 * The audit stream: JSON lines appended to a file of its own (created
 * 0600), separate from the service's log. Appending never throws and never
 * waits: a file that cannot be written is reported through onError and the
 * events are counted as dropped until it can be written again. reopen()
 * after a log rotation (SIGHUP) sends the next lines to a new file at the
 * same path; lines already queued go to the old one.
 */
export class AuditLog {
  private stream: fs.WriteStream | undefined;
  private failedAt = -Infinity;
  /** A failure was reported and no file has been opened since: the next failures are not. */
  private failing = false;
  private droppedEvents = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly coalesceMs: number;
  private readonly now: () => number;
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly options: AuditLogOptions,
  ) {
    this.coalesceMs = options.coalesceMs ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /** Opens (creates 0600, with its folder) the file for appending; a failure is reported, not thrown. */
  static open(file: string, options: AuditLogOptions = {}): AuditLog {
    const log = new AuditLog(path.resolve(file), options);
    log.openStream();
    return log;
  }

  /** Events that could not be written (the file failed). */
  get dropped(): number {
    return this.droppedEvents;
  }

  append(event: AuditEvent, options: AuditAppendOptions = {}): void {
    if (this.closed) return;
    try {
      if (!options.coalesce) {
        this.write(event, this.now(), 1);
        return;
      }
      const key = JSON.stringify([event.event, event.identity, event.action, event.layer, event.result, event.reason, event.detail]);
      const p = this.pending.get(key);
      if (p) {
        p.count++;
        p.lastAt = this.now();
        return;
      }
      this.write(event, this.now(), 1);
      const timer = setTimeout(() => this.endWindow(key), this.coalesceMs);
      timer.unref();
      this.pending.set(key, { event, count: 0, lastAt: 0, timer });
    } catch (err) {
      // An event that does not serialise (a cycle in detail) is a bug of the caller, not a reason to fail its request.
      this.fail(err);
    }
  }

  /** After a rotation: the file at the path is opened anew (created if it was moved away). */
  reopen(): void {
    if (this.closed) return;
    const old = this.stream;
    this.stream = undefined;
    old?.end();
    this.openStream();
  }

  /** Resolves when every line appended so far is handed to the file system. */
  async flush(): Promise<void> {
    const s = this.stream;
    if (!s || s.destroyed) return;
    if (s.writableLength === 0) return;
    await new Promise<void>((resolve) => s.write('', () => resolve()));
  }

  /** Writes what repeat windows still hold, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const key of [...this.pending.keys()]) this.endWindow(key);
    this.closed = true;
    const s = this.stream;
    this.stream = undefined;
    if (s && !s.destroyed) await new Promise<void>((resolve) => s.end(() => resolve()));
  }

  private endWindow(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(key);
    if (p.count > 0) this.write(p.event, p.lastAt, p.count);
  }

  private write(event: AuditEvent, at: number, count: number): void {
    if (!this.stream && this.now() - this.failedAt >= RETRY_MS) this.openStream();
    const s = this.stream;
    if (!s) {
      this.droppedEvents += count;
      return;
    }
    const line: Record<string, unknown> = {
      time: new Date(at).toISOString(),
      event: event.event,
      identity: event.identity,
      action: event.action,
      layer: event.layer,
      result: event.result,
      reason: event.reason,
      count: count > 1 ? count : undefined,
      detail: event.detail,
    };
    s.write(`${JSON.stringify(line)}\n`);
  }

  private openStream(): void {
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      // Opened synchronously so that a problem shows at once and lines are never written before the file exists.
      const fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
      const stream = fs.createWriteStream(this.file, { fd, flags: 'a' });
      stream.on('error', (err) => {
        if (this.stream === stream) this.stream = undefined;
        this.fail(err);
      });
      this.stream = stream;
      this.failing = false;
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.failedAt = this.now();
    if (this.failing) return;
    this.failing = true;
    this.options.onError?.(err instanceof Error ? err : new Error(String(err)), this.file);
  }
}
