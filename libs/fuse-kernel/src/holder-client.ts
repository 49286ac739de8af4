/**
 * The agent's side of strata-fd-holder (native/holder/): a process of its
 * own that keeps dups of each mount's /dev/fuse fds, so that the FUSE
 * connections outlive the agent (crash, upgrade), and answers EIO for
 * mounts whose agent stopped heartbeating (the watchdog).
 *
 * One request at a time on one SOCK_SEQPACKET connection; heartbeats go out
 * on the same socket from a native thread (they have no answer, so they
 * never interleave with one).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Errno, StrataError } from '@strata/errors';
import { closeFd, connectSeqpacket, receivePacket, sendPacket, startHeartbeat, stopHeartbeat } from './fd-passing';
import {
  FLAG_HARD,
  MAX_ENTRIES,
  MAX_FDS_PER_ENTRY,
  MAX_ID_BYTES,
  MAX_MESSAGE_BYTES,
  MessageType,
  decodeMessage,
  encodeMessage,
  type HolderMessage,
} from './holder-protocol';

/** An entry's meta: a JSON object the agent reads back after a restart. `hard: true` keeps the watchdog off it. */
export type HolderMeta = { hard?: boolean } & Record<string, unknown>;

export interface HolderEntry {
  id: string;
  meta: HolderMeta;
  hard: boolean;
  /** New descriptors of this process (close-on-exec): the caller owns them and closes them. */
  fds: number[];
}

export interface HolderStatus {
  pid: number;
  entries: number;
  fds: number;
  clients: number;
  agents: number;
  /** From the last heartbeat; 0: no watchdog. */
  timeoutMs: number;
  /** Since the last heartbeat. */
  silentMs: number;
  /** The watchdog is answering EIO now. */
  watchdog: boolean;
}

export interface HolderConnectOptions {
  /** Start a holder when nobody answers on the socket (detached, in a session of its own). */
  spawn?: boolean;
  /** The executable (default: holderBinary()). */
  binary?: string;
  /** How long a spawned holder waits with nothing held and no client before it exits (default 60 s; 0: never). */
  idleExitMs?: number;
  /**
   * Where a spawned holder's JSON log lines go: this process's stderr (default: in a container,
   * the container's log), nowhere, or appended to a file. Inherited, the holder keeps that stderr
   * open after this process exits: a parent reading it to EOF (a test harness) waits for the holder.
   */
  stderr?: 'inherit' | 'ignore' | { file: string };
  /** Bound on connecting, including a spawn (default 5 s). */
  timeoutMs?: number;
  /** Bound on each answer (default 5 s). */
  requestTimeoutMs?: number;
}

// Linux errnos @strata/errors does not name.
const ECONNREFUSED = 111;
const ECONNRESET = 104;
const MIN_TIMEOUT_MS = 100;
const MAX_TIMEOUT_MS = 24 * 3600 * 1000;

/** The strata-fd-holder executable node-gyp builds beside the addon. */
export function holderBinary(): string {
  return join(__dirname, '..', 'build', 'Release', 'strata-fd-holder');
}

function idBytes(id: string): Buffer {
  const bytes = Buffer.from(id, 'utf8');
  if (bytes.length === 0 || bytes.length > MAX_ID_BYTES) throw StrataError.invalid(`a holder id is 1..${MAX_ID_BYTES} bytes: ${JSON.stringify(id)}`);
  return bytes;
}

function isNobodyThere(err: unknown): boolean {
  return err instanceof StrataError && (err.errno === Errno.ENOENT || err.errno === ECONNREFUSED);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function spawnHolder(socketPath: string, options: HolderConnectOptions): void {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  let stderr: 'inherit' | 'ignore' | number = 'inherit';
  if (options.stderr === 'ignore') stderr = 'ignore';
  else if (typeof options.stderr === 'object') stderr = openSync(options.stderr.file, 'a', 0o600);
  try {
    const args = ['--socket', socketPath, '--idle-exit-ms', String(options.idleExitMs ?? 60_000)];
    // detached: setsid(2) in the child, so the holder is in no process group a terminal or
    // supervisor signals with the agent's; it outlives the agent by design.
    const child = spawn(options.binary ?? holderBinary(), args, { detached: true, stdio: ['ignore', 'ignore', stderr] });
    child.on('error', () => undefined); // reported as the connect timing out
    child.unref();
  } finally {
    if (typeof stderr === 'number') closeSync(stderr);
  }
}

export class HolderClient {
  private chain: Promise<unknown> = Promise.resolve();
  private heartbeat: number | undefined;
  private closed = false;

  private constructor(
    readonly socketPath: string,
    private readonly fd: number,
    private readonly requestTimeoutMs: number,
    /** This connect started the holder. */
    readonly spawned: boolean,
  ) {}

  /**
   * Connects to the holder on socketPath; with `spawn`, starts one when
   * nobody answers there (a second one started at the same time exits by
   * itself: one holder per socket) and waits for it, bounded.
   */
  static async connect(socketPath: string, options: HolderConnectOptions = {}): Promise<HolderClient> {
    const requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    let spawned = false;
    for (;;) {
      try {
        return new HolderClient(socketPath, connectSeqpacket(socketPath, Math.max(1, deadline - Date.now())), requestTimeoutMs, spawned);
      } catch (err) {
        if (!isNobodyThere(err)) throw err;
        if (!options.spawn) throw new StrataError((err as StrataError).errno, `no fd holder answers on ${socketPath}`, { cause: err });
        if (Date.now() >= deadline) {
          throw new StrataError(Errno.ETIMEDOUT, `the fd holder started for ${socketPath} did not answer in time`, { cause: err });
        }
        if (!spawned) {
          spawnHolder(socketPath, options);
          spawned = true;
        }
        await sleep(20);
      }
    }
  }

  /** Hands fds (dup'd by the kernel on the way: the caller keeps its own) to the holder under id, replacing an entry of that id. */
  put(id: string, meta: HolderMeta, fds: readonly number[]): Promise<void> {
    const idb = idBytes(id);
    if (fds.length === 0 || fds.length > MAX_FDS_PER_ENTRY) throw StrataError.invalid(`a holder entry has 1..${MAX_FDS_PER_ENTRY} fds (${fds.length})`);
    const flags = meta.hard === true ? FLAG_HARD : 0;
    const message = encodeMessage(MessageType.PUT, { flags, id: idb, meta: Buffer.from(JSON.stringify(meta), 'utf8') });
    return this.request(async () => {
      this.send(message, fds);
      this.expectOk(await this.receive(), `put ${id}`);
    });
  }

  /** Every entry with new dups of its fds (the caller closes them). */
  list(): Promise<HolderEntry[]> {
    return this.request(async () => {
      this.send(encodeMessage(MessageType.LIST));
      const entries: HolderEntry[] = [];
      try {
        for (let i = 0; i <= MAX_ENTRIES; i++) {
          const { message, fds } = await this.receiveWithFds();
          if (message.type === MessageType.END) return entries;
          if (message.type !== MessageType.ENTRY) {
            for (const fd of fds) closeFd(fd);
            this.expectOk(message, 'list');
            throw StrataError.io(`the fd holder answered type ${message.type} inside a listing`);
          }
          let meta: HolderMeta;
          try {
            const parsed: unknown = JSON.parse(message.meta.toString('utf8'));
            meta = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as HolderMeta) : { value: parsed };
          } catch {
            // Another client's bytes: kept visible (and the fds owned) rather than lost.
            meta = { unparsed: message.meta.toString('base64') };
          }
          entries.push({ id: message.id.toString('utf8'), meta, hard: (message.flags & FLAG_HARD) !== 0, fds });
        }
        throw StrataError.io(`the fd holder listed more than ${MAX_ENTRIES} entries`);
      } catch (err) {
        for (const e of entries) for (const fd of e.fds) closeFd(fd);
        throw err;
      }
    });
  }

  /** Closes the holder's fds of id; false when it held no such entry. */
  drop(id: string): Promise<boolean> {
    const idb = idBytes(id);
    return this.request(async () => {
      this.send(encodeMessage(MessageType.DROP, { id: idb }));
      const reply = await this.receive();
      this.expectOk(reply, `drop ${id}`);
      return reply.value === 1;
    });
  }

  status(): Promise<HolderStatus> {
    return this.request(async () => {
      this.send(encodeMessage(MessageType.STATUS));
      const reply = await this.receive();
      this.expectOk(reply, 'status');
      return JSON.parse(reply.meta.toString('utf8')) as HolderStatus;
    });
  }

  /**
   * Heartbeats every timeoutMs/4 from a native thread: the holder's
   * watchdog answers EIO for this agent's mounts once none came for
   * timeoutMs. Replaces a running heartbeat. 0 disarms the watchdog.
   */
  startHeartbeat(timeoutMs: number): void {
    this.checkOpen();
    if (!Number.isInteger(timeoutMs) || (timeoutMs !== 0 && (timeoutMs < MIN_TIMEOUT_MS || timeoutMs > MAX_TIMEOUT_MS))) {
      throw StrataError.invalid(`a watchdog timeout is 0 or ${MIN_TIMEOUT_MS}..${MAX_TIMEOUT_MS} ms (${timeoutMs})`);
    }
    this.stopHeartbeat();
    const beat = encodeMessage(MessageType.HEARTBEAT, { value: timeoutMs });
    if (timeoutMs === 0) this.send(beat);
    else this.heartbeat = startHeartbeat(this.fd, beat, Math.max(10, Math.floor(timeoutMs / 4)));
  }

  stopHeartbeat(): void {
    if (this.heartbeat !== undefined) stopHeartbeat(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Leaving on purpose (a handover): heartbeats stop, the holder keeps every entry, then the connection closes. */
  async bye(): Promise<void> {
    this.stopHeartbeat();
    try {
      await this.request(async () => {
        this.send(encodeMessage(MessageType.BYE));
        this.expectOk(await this.receive(), 'bye');
      });
    } finally {
      this.close();
    }
  }

  /** Closes the connection (the holder keeps its entries; without bye() it logs the agent as lost). */
  close(): void {
    if (this.closed) return;
    this.stopHeartbeat();
    this.closed = true;
    // A request still waiting holds the fd in a native wait: it ends by its timeout or the
    // holder's answer; the socket is closed after it so its number is never reused under it.
    void this.chain.finally(() => closeFd(this.fd));
  }

  private checkOpen(): void {
    if (this.closed) throw new StrataError(Errno.EBADF, `the connection to the fd holder on ${this.socketPath} is closed`);
  }

  private request<T>(work: () => Promise<T>): Promise<T> {
    this.checkOpen();
    const run = this.chain.then(work, work);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private send(bytes: Buffer, fds: readonly number[] = []): void {
    sendPacket(this.fd, bytes, fds, this.requestTimeoutMs);
  }

  private async receiveWithFds(): Promise<{ message: HolderMessage; fds: number[] }> {
    const packet = await receivePacket(this.fd, { maxBytes: MAX_MESSAGE_BYTES, maxFds: MAX_FDS_PER_ENTRY, timeoutMs: this.requestTimeoutMs });
    if (packet === null) throw new StrataError(ECONNRESET, `the fd holder on ${this.socketPath} closed the connection`);
    try {
      return { message: decodeMessage(packet.bytes), fds: packet.fds };
    } catch (err) {
      for (const fd of packet.fds) closeFd(fd);
      throw err;
    }
  }

  private async receive(): Promise<HolderMessage> {
    const { message, fds } = await this.receiveWithFds();
    for (const fd of fds) closeFd(fd);
    return message;
  }

  private expectOk(message: HolderMessage, what: string): void {
    if (message.type === MessageType.OK) return;
    if (message.type === MessageType.ERR) {
      throw new StrataError(message.value > 0 ? message.value : Errno.EIO, `fd holder refused ${what}: ${message.meta.toString('utf8')}`);
    }
    throw StrataError.io(`fd holder answered type ${message.type} to ${what}`);
  }
}
