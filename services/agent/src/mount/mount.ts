import { promises as fs } from 'node:fs';
import type { MountInfo } from '@strata/agent-control';
import { FuseSession, type FuseHandlers, type MountOptions, type SessionHandover } from '@strata/fuse-kernel';
import type { SessionRequester } from '@strata/client';
import { StrataError } from '@strata/errors';
import { LIVE_FRESHNESS, type Layer } from '@strata/layers';
import type { Histogram, Logger } from '@strata/telemetry';
import type { StoreView } from '../store-view';
import { stillAt, fdPath } from '../access/user-mountpoint';
import type { HostUser } from '../access/host-user';
import type { AgentAudit, Actor } from '../audit/agent-audit';
import { DiskCache } from '../data-cache/disk-cache';
import { chainIdentity } from '../data-cache/chain-identity';
import { MountData } from '../data-cache/mount-data';
import { hasStrataMount, readMountTable } from '../host/mountinfo';
import { unmount } from '../host/unmount';
import { kernelAttr } from '../kernel/attr';
import { kernelHandlers, type AnswerLifetimes, type KernelHandlers } from '../kernel/kernel-handlers';
import { NodeJournal } from '../kernel/node-journal';
import { NodeTable, ROOT_INO } from '../kernel/node-table';
import { adoptSession, handoverOf, releaseSession } from '../takeover/fuse-handover';
import { MOUNT_RECORD_FORMAT, MOUNT_RECORD_VERSION, type MountRecord } from '../takeover/mount-record';
import { MountHealth } from '../observability/mount-health';
import { OpTracker, type FuseErrorCounter } from '../observability/op-tracker';
import { CHUNK_SIZE, type ChunkCache } from './chunk-cache';
import { MountFs, type MountCounters } from './mount-fs';
import { pathOf } from './tree-path';

/** What every mount of one agent shares: its resolvers, caches, counters and log. */
export interface MountContext {
  requester: SessionRequester;
  chunks: ChunkCache;
  counters: MountCounters;
  disk: DiskCache;
  attrEntries: number;
  sealedTimeoutSeconds: number;
  fuseLatency: Histogram | undefined;
  fuseErrors: FuseErrorCounter | undefined;
  audit: AgentAudit;
  log: Logger;
  /** Where each mount's node journal is kept (absent: nowhere, no takeover). */
  stateDir?: string;
  /** A request JavaScript has not answered within this is answered EIO natively (0: wait). */
  requestTimeoutMs: number;
  /** --store-view: the image store as this host sees it, verified at start; sealed file data is read from it directly. */
  storeView?: StoreView;
  /**
   * Negotiate FUSE passthrough for cached files (default true). Mounts that
   * are handed over keep it: each keeps how its files are open (and their
   * backing ids) in its open-modes file in the state dir, which outlives a
   * crash, so a successor answers OPENs the way the kernel accepts.
   */
  passthrough?: boolean;
  /** --file-opens: who opens a new mount's files (default 'auto'); see fileOpensFor. */
  fileOpens?: FileOpens;
}

/**
 * Who opens a mount's files. 'agent': every open asks the session (one
 * round trip each, answered natively; passthrough per file). 'kernel': the
 * kernel opens them itself (FUSE no_open: no OPEN or RELEASE round trip,
 * the page cache kept across opens, no passthrough: file data handed over
 * is served by the session's pread). 'auto': the kernel wherever that is
 * allowed and measured no worse (see fileOpensFor).
 */
export type FileOpens = 'auto' | 'agent' | 'kernel';
export const FILE_OPENS: readonly FileOpens[] = ['auto', 'agent', 'kernel'];

/**
 * Whether the kernel opens a new mount's files itself, and why not. Never
 * for a LIVE mount (its page cache must be dropped at each open once a file
 * changes; the kernel keeps it under no_open) nor an audited one (each open
 * is logged, and under no_open none reaches the agent).
 * 'auto' (docs/benchmarks.md, "Kernel opens", 2026-12-07): the kernel
 * everywhere else. Its opens cut the warm full read of small files to the
 * kernel's pace (no round trip per open or close) at no measurable cost to
 * the cold full read or sequential reads, with or without a store view;
 * with a view, a store file served by the session's pread reads cold random
 * 4 KiB blocks at some 0.4–0.8 of passthrough's rate (still above half the
 * kernel's): `agent` keeps passthrough for mounts read mostly that way.
 */
export function fileOpensFor(asked: FileOpens, live: boolean, audited: boolean): { kernel: boolean; why?: string } {
  if (asked === 'agent') return { kernel: false };
  if (live) return { kernel: false, why: 'a LIVE mount: its files are opened through the agent, so each open drops a changed file\'s pages' };
  if (audited) return { kernel: false, why: 'an audited mount: its files are opened through the agent, which logs each open' };
  return { kernel: true };
}

/** One mount as asked for: the layer, where, for whom and how. */
export interface MountSpec {
  /** The layer as the caller named it (an id or a name). */
  layerText: string;
  /** The chain as looked up, this layer first. */
  chain: Layer[];
  mountpoint: string;
  owner: Actor;
  allowOther: boolean;
  /** A user's private mount: FUSE admits only this uid. */
  privateTo?: { uid: number; gid: number };
  /** A host user's mount: asked each report round whether the grant still holds (a reason to withdraw, or undefined). */
  recheck?: () => Promise<string | undefined>;
  /** The host user (not root) who mounted it: whose grant `recheck` asks about. */
  hostUser?: HostUser;
  /** Unique across agents: the holder's id of its fds, the name of its files and the key of its chunks and cached files. */
  id: string;
  /** No deadline: readers wait for the resolvers rather than see EIO. */
  hard: boolean;
}

/** The mount flags a chain asks for (a host user's mount is nosuid and nodev whatever it says). */
export function mountFlags(layer: Layer, hostUser: boolean): string[] {
  const flags = ['ro'];
  if (layer.mountOptions.includes('no-exec')) flags.push('noexec');
  if (layer.mountOptions.includes('no-suid')) flags.push('nosuid');
  if (layer.mountOptions.includes('no-dev')) flags.push('nodev');
  if (hostUser) for (const f of ['nosuid', 'nodev']) if (!flags.includes(f)) flags.push(f);
  return flags;
}

/** A mount's node journal in the agent's state dir. */
export function journalFile(stateDir: string, id: string): string {
  return `${stateDir}/${id}.nodes`;
}

/** A mount's open-modes file in the agent's state dir (FUSE passthrough across a takeover, crash included). */
export function openModesFile(stateDir: string, id: string): string {
  return `${stateDir}/${id}.opens`;
}

/** A mount's record in the agent's state dir. */
export function recordFile(stateDir: string, id: string): string {
  return `${stateDir}/${id}.mount.json`;
}

/** How a mount leaves: see Mount.detach. */
export type DetachHow = 'strict' | 'lazy' | 'forced';

/** The parts of a mount made before its session exists (the session needs the handlers, the handlers the session). */
interface Parts {
  fs: MountFs;
  nodes: NodeTable;
  journal?: NodeJournal;
  data: MountData;
  health: MountHealth;
  handlers: FuseHandlers;
  /** What the mount tells its handlers besides requests: listings known, and the prefetch walk large hand-overs wait for. */
  ahead: Pick<KernelHandlers, 'listed' | 'holdLargeUntil'>;
  options: MountOptions;
  live: boolean;
  audited: boolean;
  /** The kernel opens its files itself (FUSE no_open). */
  kernelOpens: boolean;
  flags: string[];
  setSession(s: FuseSession): void;
}

/**
 * One FUSE mount of a layer and everything that serves it: its session,
 * node table, file system view, cached file data and health. The agent
 * keeps a map of these; a mount's lifecycle (made, detached, forgotten)
 * is its own.
 */
export class Mount {
  prefetch?: AbortController;
  /** The fd holder keeps its fds and its record is on file: it can be handed over. */
  held = false;

  private constructor(
    readonly spec: MountSpec,
    readonly info: MountInfo,
    readonly session: FuseSession,
    readonly fs: MountFs,
    readonly nodes: NodeTable,
    readonly data: MountData,
    readonly health: MountHealth,
    /** Whether opens are audited (a mark anywhere in the chain). */
    readonly audited: boolean,
    /** The node table on file, for a successor (absent: no state dir). */
    readonly journal: NodeJournal | undefined,
    private readonly log: Logger,
    /** See listed() and largeAheadAfter(). */
    private readonly ahead: Pick<KernelHandlers, 'listed' | 'holdLargeUntil'> = { listed: () => undefined, holdLargeUntil: () => undefined },
  ) {}

  /**
   * A directory's listing is known (the prefetch walk completed it): its
   * large files are handed over ahead of their first READ where the kernel
   * opens files (KernelHandlers.listed).
   */
  listed(dirKey: string, entries: Parameters<KernelHandlers['listed']>[1]): void {
    this.ahead.listed(dirKey, entries);
  }

  /** Large files are handed over ahead only once the mount's prefetch walk has settled (KernelHandlers.holdLargeUntil). */
  largeAheadAfter(walk: Promise<unknown>): void {
    this.ahead.holdLargeUntil(walk);
  }

  /** Who opens this mount's files: the kernel itself (FUSE no_open) or the agent's session. */
  get fileOpens(): 'kernel' | 'agent' {
    return this.session.kernelOpens ? 'kernel' : 'agent';
  }

  /** What reached this mount's session and how it was served, logged when it stops serving (debug). */
  private logSessionStats(why: string): void {
    try {
      const s = this.session.stats();
      this.log.debug(
        {
          event: 'agent.fuse.session_stats',
          mountpoint: this.mountpoint,
          why,
          fileOpens: s.kernelOpens ? 'kernel' : 'agent',
          requests: s.requests,
          native: s.native,
          toJs: s.toJs,
          opens: s.opens,
          releases: s.releases,
          preadReads: s.preadReads,
          fileData: s.fileData,
          passthrough: s.passthrough,
        },
        'FUSE session counters',
      );
    } catch {
      // A session that cannot say: nothing to log.
    }
  }

  get id(): string {
    return this.spec.id;
  }

  get hard(): boolean {
    return this.spec.hard;
  }

  get mountpoint(): string {
    return this.info.mountpoint;
  }

  get chain(): Layer[] {
    return this.spec.chain;
  }

  get owner(): Actor {
    return this.spec.owner;
  }

  get recheck(): (() => Promise<string | undefined>) | undefined {
    return this.spec.recheck;
  }

  get live(): boolean {
    return this.info.live;
  }

  /**
   * Mounts the layer at `spec.mountpoint` (mount(2), INIT). `dir`, a host
   * user's mount: their directory, held open since it was checked, so a
   * rename in between is caught.
   */
  static async create(spec: MountSpec, ctx: MountContext, dir?: fs.FileHandle): Promise<Mount> {
    const parts = Mount.parts(spec, ctx, dir !== undefined);
    const { fs: mfs, data } = parts;
    const undo = (): void => {
      data.dispose();
      mfs.dispose();
      parts.journal?.remove();
    };
    // The root must answer before the kernel sees the mount.
    const rootAttr = await mfs.stat(Buffer.from('/')).catch((err: unknown) => {
      undo();
      throw StrataError.from(err, `layer ${spec.chain[0].layerId} does not answer`);
    });
    let session: FuseSession;
    try {
      session = await FuseSession.mount(spec.mountpoint, parts.handlers, {
        ...parts.options,
        rootAttr: kernelAttr(rootAttr),
        ...(dir ? { mountpointFd: dir.fd } : {}),
      });
    } catch (err) {
      undo();
      throw StrataError.from(err, `mounting ${spec.mountpoint}`);
    }
    parts.setSession(session);
    if (dir && !(await stillAt(dir.fd, spec.mountpoint))) {
      // Renamed between the checks and mount(2): the mount sits on the user's own directory, elsewhere; it goes again.
      const now = await fs.readlink(fdPath(dir.fd)).catch(() => undefined);
      if (now !== undefined && hasStrataMount(await readMountTable(), now)) await unmount(now, true).catch(() => undefined);
      await session.unmount();
      undo();
      // The session made its open-modes file after INIT: a mount that goes again leaves none.
      if (ctx.stateDir !== undefined) await fs.rm(openModesFile(ctx.stateDir, spec.id), { force: true }).catch(() => undefined);
      throw StrataError.precondition(`mountpoint ${spec.mountpoint} was moved while it was being mounted`);
    }
    const info: MountInfo = {
      mountpoint: spec.mountpoint,
      layerId: spec.chain[0].layerId,
      layerName: spec.chain[0].name,
      chain: spec.chain.map((l) => l.layerId),
      live: parts.live,
      flags: parts.flags,
      mountedAt: new Date().toISOString(),
      ...(spec.hard ? { hard: true } : {}),
    };
    return Mount.assemble(spec, info, session, parts, ctx);
  }

  /**
   * Serves a mount another agent made, from what it left: its record, its
   * node journal (every ino the kernel may name keeps its path) and the
   * FUSE fds the holder kept. No mount(2), no INIT, no request lost: the
   * session has the kernel resend what the predecessor had read but not
   * answered. Throws (the caller clears the mount) when any of it is
   * unreadable or of another version.
   */
  static adopt(record: MountRecord, fds: number[], ctx: MountContext): Mount {
    const restored = NodeJournal.read(record.nodes);
    const nodes = new NodeTable(restored);
    const owner: Actor = record.owner;
    const spec: MountSpec = {
      layerText: record.layer,
      chain: record.chain,
      mountpoint: record.mountpoint,
      owner,
      allowOther: record.allowOther,
      ...(record.privateTo ? { privateTo: record.privateTo } : {}),
      ...(record.hostUser ? { hostUser: record.hostUser } : {}),
      id: record.id,
      hard: record.hard,
    };
    // The connection's mode, as its first agent chose it: the kernel keeps no_open for the connection's life.
    const kernelOpens = (record.handover as { negotiated?: { kernelOpens?: unknown } }).negotiated?.kernelOpens === true;
    const parts = Mount.parts(spec, ctx, record.hostUser !== undefined, nodes, kernelOpens);
    let session: FuseSession;
    try {
      session = adoptSession(fds, record.handover as unknown as SessionHandover, parts.handlers, { ...parts.options, adoptedInos: [...restored.nodes.keys()] });
    } catch (err) {
      parts.data.dispose();
      parts.fs.dispose();
      parts.journal?.close();
      throw StrataError.from(err, `taking over ${record.mountpoint}`);
    }
    parts.setSession(session);
    const info: MountInfo = {
      mountpoint: record.mountpoint,
      layerId: record.chain[0].layerId,
      layerName: record.chain[0].name,
      chain: record.chain.map((l) => l.layerId),
      live: parts.live,
      flags: record.flags,
      mountedAt: record.mountedAt,
      ...(record.hard ? { hard: true } : {}),
    };
    return Mount.assemble(spec, info, session, parts, ctx);
  }

  /** What a successor needs besides the fds; undefined where this build's session cannot be handed over. */
  handover(stateDir: string): { record: MountRecord; fds: number[] } | undefined {
    const h = handoverOf(this.session);
    if (!h || !this.journal) return undefined;
    const owner = this.spec.owner;
    return {
      fds: h.fds,
      record: {
        format: MOUNT_RECORD_FORMAT,
        version: MOUNT_RECORD_VERSION,
        id: this.id,
        layer: this.spec.layerText,
        chain: this.spec.chain,
        mountpoint: this.mountpoint,
        hard: this.hard,
        owner: owner === 'agent' ? 'agent' : { uid: owner.uid, pid: owner.pid, ...(owner.name !== undefined ? { name: owner.name } : {}) },
        allowOther: this.spec.allowOther,
        ...(this.spec.privateTo ? { privateTo: this.spec.privateTo } : {}),
        ...(this.spec.hostUser ? { hostUser: this.spec.hostUser } : {}),
        flags: this.info.flags,
        mountedAt: this.info.mountedAt,
        handover: h.state as unknown as Record<string, unknown>,
        nodes: journalFile(stateDir, this.id),
      },
    };
  }

  /** Stops serving, leaving the mount and its connection to the holder and a successor. */
  async release(): Promise<void> {
    this.prefetch?.abort();
    await releaseSession(this.session);
    this.logSessionStats('released');
    this.journal?.close();
    this.data.dispose();
    this.fs.dispose();
  }

  private static assemble(spec: MountSpec, info: MountInfo, session: FuseSession, parts: Parts, ctx: MountContext): Mount {
    parts.data.attach(session);
    // The node table keeps a path per ino the session might still name; past the native cache's own bound it forgets the rest.
    parts.nodes.sweepWith(() => session.liveInos(), ctx.attrEntries, (r) =>
      ctx.log.info({ event: 'agent.nodes.swept', mountpoint: spec.mountpoint, ...r }, 'forgot the inos the kernel and the native cache no longer name'),
    );
    return new Mount(spec, info, session, parts.fs, parts.nodes, parts.data, parts.health, parts.audited, parts.journal, ctx.log, parts.ahead);
  }

  /** Everything but the session: the view of the layer, the node table, the data cache, the handlers and the session's options. */
  private static parts(spec: MountSpec, ctx: MountContext, hostUser: boolean, nodes = new NodeTable(), adoptedKernelOpens?: boolean): Parts {
    const { chain, mountpoint, id: mountKey } = spec;
    // On file before the session can hand the kernel a single ino.
    let journal: NodeJournal | undefined;
    if (ctx.stateDir !== undefined) {
      const start = nodes.contents();
      journal = NodeJournal.create(journalFile(ctx.stateDir, spec.id), start.next, start.nodes);
      nodes.journalTo(journal);
    }
    const layer = chain[0];
    const live = chain.some((l) => l.mountOptions.includes('live'));
    // What a base holds shows through every layer above it: a mark anywhere in the chain audits the mount.
    const audited = chain.some((l) => l.mountOptions.includes('audit'));
    // Whatever the layer says: a set-uid file or a device node in an image must not work for a user who is not root.
    const flags = mountFlags(layer, hostUser);
    const storeView = live ? undefined : ctx.storeView;
    let kernelOpens: boolean;
    if (adoptedKernelOpens !== undefined) {
      kernelOpens = adoptedKernelOpens;
    } else {
      const asked = ctx.fileOpens ?? 'auto';
      const opens = fileOpensFor(asked, live, audited);
      kernelOpens = opens.kernel;
      if (asked === 'kernel' && opens.why) ctx.log.info({ event: 'agent.file_opens.agent', mountpoint, layerId: layer.layerId, reason: opens.why }, `--file-opens kernel: not for ${opens.why}`);
    }
    const mfs = new MountFs({ session: ctx.requester, layerId: layer.layerId, live, chunks: ctx.chunks, mountKey, attrEntries: ctx.attrEntries, counters: ctx.counters, ...(storeView ? { storeView } : {}) });
    // The kernel's part of the one-second LIVE budget (LIVE_FRESHNESS), stacked on the agent's and the resolver's;
    // a sealed layer never changes, so what the session's native cache holds stays until the kernel forgets it.
    const life: AnswerLifetimes = live
      ? { kernelSeconds: LIVE_FRESHNESS.kernelTimeoutMs / 1000, cacheTtl: LIVE_FRESHNESS.agentCacheMs / 1000 }
      : { kernelSeconds: ctx.sealedTimeoutSeconds, cacheTtl: Infinity };
    // A LIVE file changes under its readers: only sealed ones are kept whole on disk.
    const data = new MountData({
      cache: live ? DiskCache.none() : ctx.disk,
      // Named by what the bytes are, not by this mount: another mount of the chain, or the next agent, reuses them.
      chainIdentity: chainIdentity(chain),
      stat: (p) => mfs.stat(p),
      chunkSize: CHUNK_SIZE,
      fetchChunk: (p, i) => mfs.chunk(p, i),
      log: ctx.log,
      mountpoint,
    });
    // The session exists only once mounted; until then nothing can ask for xattrs.
    let session: FuseSession | undefined;
    const health = new MountHealth();
    const served = kernelHandlers(
      mfs,
      nodes,
      new OpTracker(layer.layerId, ctx.fuseLatency, ctx.log, health, ctx.fuseErrors),
      life,
      {
        cacheXattrs: (ino, set) => session?.cacheXattrs(ino, set),
        setFileData: (ino, fd) => session?.setFileData(ino, fd),
        setFileRuns: (ino, fds, runs, size) => {
          if (!session) return false;
          session.setFileRuns(ino, fds, runs, size);
          return true;
        },
      },
      data,
      storeView?.reader({ id: layer.layerId }),
      { kernelOpens },
    );
    const handlers: FuseHandlers = audited
      ? {
          ...served,
          opened: (ino, _fh, who) => {
            let file: Buffer;
            try {
              file = pathOf(nodes.keyOf(ino));
            } catch {
              file = Buffer.from(`<ino ${ino}>`);
            }
            ctx.audit.fileOpened(who, spec.layerText, mountpoint, file);
          },
        }
      : served;
    const options: MountOptions = {
      fsName: `strata:${layer.name || layer.layerId}`,
      subtype: 'strata',
      rootIno: ROOT_INO,
      exec: !flags.includes('noexec'),
      suid: !flags.includes('nosuid'),
      dev: !flags.includes('nodev'),
      allowOther: spec.allowOther,
      // Without allow_other FUSE admits only the mount's owner: a user's private mount is owned by that user.
      owner: spec.privateTo,
      defaultPermissions: true,
      keepCache: !live,
      // Where the kernel does not offer it, the session opens files as usual (session.kernelOpens says which).
      kernelOpens,
      passthrough: ctx.passthrough !== false,
      ...(ctx.stateDir !== undefined ? { openModesFile: openModesFile(ctx.stateDir, spec.id) } : {}),
      entryTimeout: life.kernelSeconds,
      attrTimeout: life.kernelSeconds,
      negativeTimeout: life.kernelSeconds,
      negativeCacheTtl: life.cacheTtl,
      cacheLimit: ctx.attrEntries,
      onError: (err, op) => ctx.log.error({ event: 'agent.fuse.handler_error', op, err: StrataError.from(err).message }, 'FUSE handler failed'),
      requestTimeoutMs: spec.hard ? 0 : ctx.requestTimeoutMs,
    };
    return { fs: mfs, nodes, journal, data, health, handlers, ahead: served, options, live, audited, kernelOpens, flags, setSession: (s) => (session = s) };
  }

  /**
   * Not lazy: umount(8) refuses a busy mount (EBUSY) and nothing changes.
   * Lazy: the mount leaves the namespace at once and files still open keep
   * being read until closed. Forced (a withdrawn mount, shutdown): the
   * connection is closed too, so whatever still holds the mount gets ENOTCONN
   * instead of a tree that is no longer the layer's.
   */
  async detach(how: DetachHow): Promise<void> {
    if (how === 'strict' && hasStrataMount(await readMountTable(), this.mountpoint)) await unmount(this.mountpoint, false);
    if (how === 'lazy') this.session.detach();
    else await this.session.unmount();
  }

  /** Its caches go once the kernel lets go of the session (a lazily detached one keeps serving files still open). */
  disposeWhenClosed(): void {
    void this.session.closed.then((reason) => {
      this.logSessionStats(reason);
      this.data.dispose();
      this.fs.dispose();
    });
  }
}
