import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AgentStatus, MountInfo } from '@strata/agent-control';
import { StrataClient, isTransportError, type SessionGroup, type SessionRequester } from '@strata/client';
import { Errno, GrpcCode, StrataError, isStrataError } from '@strata/errors';
import { parseLayerRef, type Layer } from '@strata/layers';
import type { Logger } from '@strata/telemetry';
import type { HostUser } from './access/host-user';
import { hostUserMayMount } from './access/mount-grant';
import { openUserMountpoint } from './access/user-mountpoint';
import { AgentAudit, type Actor } from './audit/agent-audit';
import { nativePrefetchSink } from './kernel/native-prefetch';
import { hasStrataMount, readMountTable } from './host/mountinfo';
import { unmount } from './host/unmount';
import { DiskCache } from './data-cache/disk-cache';
import { ChunkCache } from './mount/chunk-cache';
import { Mount, journalFile, openModesFile, recordFile, type DetachHow, type FileOpens, type MountContext, type MountSpec } from './mount/mount';
import { DesiredState, type DesiredMount } from './takeover/desired-state';
import { Holder, closeFds, type HeldEntry } from './takeover/holder';
import { SystemdStore } from './takeover/systemd-store';
import { readMountRecord, writeMountRecord } from './takeover/mount-record';
import type { MountCounters } from './mount/mount-fs';
import { registerAgentMetrics } from './observability/agent-metrics';
import { fuseErrorCounter, fuseLatencyHistogram } from './observability/op-tracker';
import { OutageMonitor } from './observability/outage-monitor';
import { ResolverStates } from './observability/resolver-states';
import { StateFile, isLiveAgent } from './state-file';
import { MountReporter } from './mount-reporter';
import { mountLiveness } from './host/mount-liveness';
import { StoreView } from './store-view';

export interface AgentOptions {
  resolver: string;
  /** Where the list of owned mounts is kept (stale-mount cleanup after a crash). */
  stateFile: string;
  /** Every FUSE operation fails with EIO after this long without an answer. */
  deadlineMs: number;
  chunkCacheBytes: number;
  attrEntries: number;
  /** Walk the tree into the caches at mount when it has at most this many entries (0: never). */
  prefetchEntries: number;
  /** Kernel entry/attr/negative timeout for sealed layers, seconds. */
  sealedTimeoutSeconds: number;
  /** Sealed files kept whole on disk here, at most `maxBytes` in all, served by passthrough (absent or 0: off). */
  dataCache?: { dir: string; maxBytes: number };
  /** Where mounts and unmounts are recorded (absent: nowhere). */
  audit?: AgentAudit;
  log: Logger;
  /**
   * The agent's runtime state (absent: none, no takeover, no desired state):
   * each mount's record and node journal, the fd holder's socket and the
   * mounts made with `strata mount`.
   */
  stateDir?: string;
  /** Take over the mounts a predecessor left in the holder (false: clear them, as before takeover existed). */
  takeover?: boolean;
  /** A request not answered within this fails with EIO (natively; and the holder's watchdog for a stopped agent). 0: wait. */
  requestTimeoutMs?: number;
  /** --store-view: the image store as this host sees it; sealed layers' file data read from it by extent maps (absent: through the resolvers only). */
  storeView?: string;
  /** --file-opens: who opens a new sealed mount's files, the agent's session or the kernel itself (default 'auto'). */
  fileOpens?: FileOpens;
}

/** How `mount` was asked for. */
export interface MountRequest {
  /** The control-socket user who asked (absent: the agent itself). */
  caller?: HostUser;
  /** Wait for the resolvers rather than fail after the deadline (no watchdog either). */
  hard?: boolean;
  /** Kept in the desired state, so the next agent mounts it again when no takeover did (`strata mount`). */
  desired?: boolean;
  /** Mounted again from the desired state (logged as such). */
  restored?: boolean;
}

/** What the agent itself knows for `strata status` (the process and TLS parts are main's). */
export type AgentView = Pick<AgentStatus, 'resolvers' | 'outage' | 'dataCache' | 'chunkCache' | 'mounts'>;

/** Whether a failed Session request got no answer at all (as opposed to an error answer from a resolver). */
function unanswered(err: unknown): boolean {
  if (isTransportError(err)) return true;
  const e = StrataError.from(err);
  return e.code === GrpcCode.DEADLINE_EXCEEDED || e.code === GrpcCode.CANCELLED;
}

/**
 * The host agent: one Session stream to the resolvers serves the FUSE mounts
 * of every layer this host projects.
 */
export class Agent {
  private readonly client: StrataClient;
  private readonly session: SessionGroup;
  private readonly chunks: ChunkCache;
  private readonly mounts = new Map<string, Mount>();
  private readonly busy = new Set<string>();
  private readonly state: StateFile;
  private readonly log: Logger;
  private readonly counters: MountCounters = { attrHits: 0, attrMisses: 0, bytesRead: 0 };
  private readonly fuseLatency = fuseLatencyHistogram();
  private readonly fuseErrors = fuseErrorCounter();
  private readonly outages: OutageMonitor;
  private readonly resolvers: ResolverStates;
  private readonly reporter: MountReporter;
  /** The session as mounts use it: every answer or failure also tells the outage monitor. */
  private readonly requester: SessionRequester;
  private mountSeq = 0;
  /** Mounts taken over from a predecessor at start. */
  takenOver = 0;
  /** What every mount shares. */
  private readonly mountContext: MountContext;
  /** Keeps the FUSE fds across agents (absent: none; the mounts end with the agent, as before takeover). */
  private holder?: Holder;
  /** systemd's fd store, where the service manager runs the agent: a second keeper of the mounts' fds. */
  private systemd?: SystemdStore;
  private readonly desired?: DesiredState;
  private readonly audit: AgentAudit;

  private constructor(
    private readonly o: AgentOptions,
    private readonly disk: DiskCache,
  ) {
    this.log = o.log;
    this.audit = o.audit ?? AgentAudit.none();
    this.client = new StrataClient({ resolver: o.resolver, deadlineMs: o.deadlineMs });
    this.outages = new OutageMonitor(this.log);
    this.resolvers = new ResolverStates(
      o.resolver.split(',').map((a) => a.trim()).filter((a) => a !== ''),
      () => this.outages.unreachable,
    );
    // A name given stands for every address it resolves to (a headless Service): status lists each, as the Sessions use them.
    const follow = (): void => this.resolvers.follow(this.client.pool.endpoints);
    void this.client.pool.ready().then(follow);
    this.client.pool.subscribe(follow);
    this.session = this.client.sessionGroup({
      deadlineMs: o.deadlineMs,
      onEvent: (e) => {
        if (e.type === 'connected') {
          this.log.debug({ event: 'agent.session.connected', resolver: e.address }, 'session stream open');
          this.outages.streamConnected(e.address);
          this.resolvers.connected(e.address);
        } else {
          this.log.debug({ event: 'agent.session.broken', resolver: e.address, err: e.error?.message }, 'session stream lost; moving on');
          this.resolvers.broken(e.address, e.error?.message);
          void this.outages.streamBroken(e.address, e.error?.message);
        }
      },
      // The resolver's plain data stream for file reads (beside the gRPC port); when it breaks, reads go over the Session.
      onDataEvent: (e) => {
        if (e.type === 'connected') this.log.debug({ event: 'agent.data.connected', resolver: e.address }, 'data stream open');
        else this.log.debug({ event: 'agent.data.broken', resolver: e.address, err: e.error?.message }, 'data stream lost; reads go over the session');
      },
    });
    this.requester = {
      request: (payload, traceContext) =>
        this.session.request(payload, traceContext).then(
          (answer) => {
            this.outages.resolverAnswered();
            return answer;
          },
          (err: unknown) => {
            const e = StrataError.from(err);
            // An error answer (ENOENT, EACCES, or EIO for an unreadable image: retryable, but an answer) is a resolver
            // answering; only a deadline, a stream that could not be used or a closed session mean none answered.
            if (unanswered(err)) this.outages.operationFailed(payload.$case, e.message);
            else this.outages.resolverAnswered();
            throw e;
          },
        ),
    };
    this.chunks = new ChunkCache(o.chunkCacheBytes);
    this.mountContext = {
      requester: this.requester,
      chunks: this.chunks,
      counters: this.counters,
      disk,
      attrEntries: o.attrEntries,
      sealedTimeoutSeconds: o.sealedTimeoutSeconds,
      fuseLatency: this.fuseLatency,
      fuseErrors: this.fuseErrors,
      audit: this.audit,
      log: this.log,
      ...(o.stateDir !== undefined ? { stateDir: o.stateDir } : {}),
      requestTimeoutMs: o.requestTimeoutMs ?? 0,
      ...(o.fileOpens !== undefined ? { fileOpens: o.fileOpens } : {}),
    };
    if (o.stateDir !== undefined) this.desired = new DesiredState(path.join(o.stateDir, 'desired.json'));
    this.state = new StateFile(o.stateFile);
    // The same id across restarts of the agent of this socket: a successor's report replaces its predecessor's.
    const agentId = `${os.hostname()}:${path.resolve(o.stateFile)}`;
    this.reporter = new MountReporter({
      mounts: () => [...this.mounts.values()].map((m) => ({ mountpoint: m.info.mountpoint, layerId: m.info.layerId, chain: m.chain })),
      send: (mounts, ttlSeconds) =>
        this.client.reportMounts({ agentId, host: os.hostname(), mounts: mounts.map((m) => ({ layerId: m.layerId, mountpoint: m.mountpoint })), ttlSeconds }),
      chainOf: async (layerId) => (await this.client.getLayer({ id: layerId })).chain,
      withdraw: (mountpoint, reason) => this.withdraw(mountpoint, reason),
      mayKeep: async (mountpoint) => this.mounts.get(mountpoint)?.recheck?.(),
      onError: (what, err) => this.log.debug({ event: 'agent.report_failed', what, err: err.message }, 'mount report failed; retried at the next round'),
    });
    registerAgentMetrics({
      counters: this.counters,
      mounts: () => this.mounts.size,
      mountStates: () => [...this.mounts.values()].map((m) => this.stateOf(m)),
      chunks: this.chunks,
      inflight: () => this.session.inflight,
      resolvers: () => this.resolvers.list(),
      dataCache: () => this.disk.stats(),
    });
  }

  static async start(o: AgentOptions): Promise<Agent> {
    const agent = new Agent(o, o.dataCache && o.dataCache.maxBytes > 0 ? await DiskCache.open(o.dataCache.dir, o.dataCache.maxBytes, { log: o.log }) : DiskCache.none());
    await agent.checkOwner();
    // Before any mount (taken over ones included) is served: a view that is not the resolvers' store stops the start.
    if (o.storeView !== undefined) await agent.openStoreView(o.storeView);
    await agent.takeOver();
    await agent.clearStale();
    agent.reporter.start();
    return agent;
  }

  private async openStoreView(dir: string): Promise<void> {
    const view = await StoreView.open(dir, this.client, { warn: (event, message) => this.log.warn(event, message) });
    this.mountContext.storeView = view;
    this.log.info({ event: 'agent.store_view', dir, storeId: view.storeId, sameMount: view.devComparable }, 'sealed layers are read from the store directly');
  }

  /**
   * Dead mounts a crashed predecessor left (ENOTCONN to every reader) are
   * detached. Nothing is touched while the agent that wrote the state file
   * still runs, and a mount whose server answers is never cleared: only a
   * connection that is really dead goes.
   */
  private async checkOwner(): Promise<void> {
    const { pid } = await this.state.read();
    if (pid !== undefined && (await isLiveAgent(pid))) {
      throw StrataError.precondition(`another agent (pid ${pid}) is running and owns the mounts listed in ${this.state.file}; stop it first`);
    }
  }

  private async clearStale(): Promise<void> {
    const { mounts: owned } = await this.state.read();
    if (owned.length === 0) return;
    const table = await readMountTable();
    for (const m of owned) {
      // Taken over: served again.
      if (this.mounts.has(m.mountpoint) || !hasStrataMount(table, m.mountpoint)) continue;
      const liveness = await mountLiveness(m.mountpoint);
      if (liveness !== 'dead') {
        this.log.warn(
          { event: 'agent.stale_mount_kept', mountpoint: m.mountpoint, layerId: m.layerId, liveness },
          'a mount listed by a previous agent still has a server; left alone',
        );
        continue;
      }
      try {
        await unmount(m.mountpoint, true);
        this.log.warn({ event: 'agent.stale_mount_cleared', mountpoint: m.mountpoint, layerId: m.layerId }, 'cleared a mount left by a previous agent');
      } catch (err) {
        this.log.error({ event: 'agent.stale_mount_failed', mountpoint: m.mountpoint, err: StrataError.from(err, 'umount').message }, 'could not clear a stale mount');
      }
    }
    await this.saveState();
  }

  /**
   * Connects to the fd holder (spawning it) and serves every mount it
   * holds whose record this agent can read (`agent.mount_taken_over`). A
   * foreign or damaged record, or --no-takeover: the mount is cleared as a
   * dead one was before takeover existed (detached lazily), and dropped.
   */
  private async takeOver(): Promise<void> {
    try {
      await this.takeOverHeld();
    } finally {
      if (this.o.takeover === false) {
        // Cleared: from now on this agent's mounts end with it, as before takeover existed (and keep FUSE passthrough).
        this.holder?.close();
        this.holder = undefined;
        this.systemd = undefined;
      }
    }
  }

  private async takeOverHeld(): Promise<void> {
    const dir = this.o.stateDir;
    if (dir === undefined) return;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await this.desired?.load((problem) => this.log.error({ event: 'agent.desired_state_unreadable', err: problem }, 'desired state unreadable: no mounts restored from it'));
    this.systemd = SystemdStore.open((problem) => this.log.warn({ event: 'agent.fd_store_problem', err: problem }, "systemd's fd store: " + problem));
    const stored = this.systemd?.taken() ?? [];
    // --no-takeover: a holder still running is asked what it keeps (to clear it), none is started, and nothing new is given to it.
    const keep = this.o.takeover !== false;
    const holder = await Holder.connect(path.join(dir, 'holder.sock'), path.join(dir, 'holder.log'), keep);
    if (holder instanceof Holder) {
      this.holder = holder;
      const timeout = this.o.requestTimeoutMs ?? 0;
      // Before anything is put: the watchdog's bound is known from the first entry on.
      if (timeout > 0) holder.heartbeat(timeout);
    } else if (keep) {
      this.log.warn(
        { event: 'agent.holder_unavailable', err: holder.unavailable, fdStore: this.systemd !== undefined },
        this.systemd ? "no fd holder: mounts are kept in systemd's fd store only (no watchdog for a stopped agent)" : 'no fd holder: mounts end with this agent',
      );
    }
    if (!this.holder && !this.systemd) return;
    const entries: HeldEntry[] = this.holder
      ? await this.holder.list().catch((err: unknown) => {
          this.log.error({ event: 'agent.holder_failed', err: StrataError.from(err).message }, 'the fd holder did not list what it holds');
          return [];
        })
      : [];
    // What only systemd kept (the holder was gone too): its record says what it is. systemd's copies of what the holder has are not needed.
    const inHolder = new Set(entries.map((e) => e.id));
    for (const s of stored) {
      if (inHolder.has(s.id)) {
        closeFds(s.fds);
        continue;
      }
      const file = recordFile(dir, s.id);
      const record = await readMountRecord(file).catch(() => undefined);
      entries.push({ id: s.id, meta: record ? { hard: record.hard, layer: record.layer, mountpoint: record.mountpoint, record: file } : undefined, fds: s.fds });
    }
    if (entries.length === 0) return;
    const table = await readMountTable();
    for (const e of entries) {
      const started = performance.now();
      const where = e.meta?.mountpoint;
      try {
        if (!e.meta) throw new StrataError(Errno.EUCLEAN, `held mount ${e.id}: no meta of this agent's format, or no readable record`);
        if (!hasStrataMount(table, e.meta.mountpoint)) {
          this.log.info({ event: 'agent.takeover_gone', id: e.id, mountpoint: e.meta.mountpoint }, 'a held mount is no longer mounted: dropped');
          await this.dropHeld(e.id, e.meta.record);
          continue;
        }
        if (this.o.takeover === false) {
          await unmount(e.meta.mountpoint, true).catch(() => undefined);
          await this.dropHeld(e.id, e.meta.record);
          this.log.warn({ event: 'agent.stale_mount_cleared', mountpoint: e.meta.mountpoint, layer: e.meta.layer, reason: 'no-takeover' }, 'cleared a mount left by a previous agent (--no-takeover)');
          continue;
        }
        const record = await readMountRecord(e.meta.record);
        if (record.id !== e.id || record.mountpoint !== e.meta.mountpoint) throw new StrataError(Errno.EUCLEAN, `mount record ${e.meta.record} is not the one of holder entry ${e.id}`);
        // On file before this session serves: a successor of its crash must give its fhs a generation of their own
        // (files still hold this one's), and must read how files are open from the open-modes file, never from
        // files a graceful handover once wrote (stale as soon as this session answers an OPEN).
        const n = record.handover.negotiated as Record<string, unknown> | undefined;
        const { files: _stale, ...handed } = record.handover;
        void _stale;
        await writeMountRecord(e.meta.record, { ...record, handover: { ...handed, negotiated: { ...n, generation: Number(n?.generation) + 1 } } });
        const m = Mount.adopt(record, e.fds, this.mountContext);
        // A host user's grant is still asked at each report round.
        if (m.spec.hostUser) m.spec.recheck = this.grantRecheck(m.spec.hostUser, record.layer, record.allowOther);
        this.adopted(m);
        this.takenOver++;
        // The session may read from fds of its own now: the holder keeps those.
        const h = m.handover(dir);
        if (h) {
          if (this.holder) await this.holder.put(m.id, { hard: m.hard, layer: record.layer, mountpoint: m.mountpoint, record: e.meta.record }, h.fds);
          const inStore = this.systemd?.store(m.id, h.fds) === true;
          m.held = this.holder !== undefined || inStore;
        }
        this.log.info(
          { event: 'agent.mount_taken_over', mountpoint: m.mountpoint, layerId: m.info.layerId, hard: m.hard, fileOpens: m.fileOpens, nodes: m.nodes.size, ms: Math.round(performance.now() - started) },
          'took a mount over from the previous agent',
        );
      } catch (err) {
        const message = StrataError.from(err).message;
        this.log.error(
          { event: 'agent.takeover_refused', id: e.id, mountpoint: where, err: message },
          `could not take over ${where ?? `holder entry ${e.id}`}: ${message}; cleared as a dead mount`,
        );
        if (where !== undefined && hasStrataMount(table, where) && !this.mounts.has(where)) await unmount(where, true).catch(() => undefined);
        await this.dropHeld(e.id, e.meta?.record);
      } finally {
        closeFds(e.fds);
      }
    }
    if (this.mounts.size > 0) {
      await this.saveState();
      void this.reporter.changed();
    }
  }

  /** A held entry that no agent serves any more: its fds closed in the holder, its files removed. */
  private async dropHeld(id: string, record: string | undefined): Promise<void> {
    this.systemd?.remove(id);
    await this.holder?.drop(id).catch((err: unknown) => this.log.warn({ event: 'agent.holder_failed', id, err: StrataError.from(err).message }, 'the fd holder did not drop an entry'));
    const dir = this.o.stateDir;
    if (dir === undefined) return;
    // Only files in the agent's own state dir: a record's own word on where its journal is is not trusted with rm.
    for (const f of [recordFile(dir, id), journalFile(dir, id), openModesFile(dir, id), `${openModesFile(dir, id)}.new`, ...(record !== undefined && path.dirname(record) === dir ? [record] : [])]) {
      await fs.rm(f, { force: true }).catch(() => undefined);
    }
  }

  /** Gives the holder the mount's fds and writes what a successor needs to serve it. */
  private async hold(m: Mount): Promise<void> {
    const dir = this.o.stateDir;
    if ((!this.holder && !this.systemd) || dir === undefined) return;
    try {
      const h = m.handover(dir);
      if (!h) {
        this.log.warn({ event: 'agent.takeover_unavailable', mountpoint: m.mountpoint }, 'this build cannot hand the mount over: it ends with this agent');
        return;
      }
      const file = recordFile(dir, m.id);
      await writeMountRecord(file, h.record);
      if (this.holder) await this.holder.put(m.id, { hard: m.hard, layer: m.spec.layerText, mountpoint: m.mountpoint, record: file }, h.fds);
      const inStore = this.systemd?.store(m.id, h.fds) === true;
      m.held = this.holder !== undefined || inStore;
    } catch (err) {
      this.log.warn({ event: 'agent.takeover_unavailable', mountpoint: m.mountpoint, err: StrataError.from(err).message }, 'the mount could not be given to the fd holder: it ends with this agent');
    }
  }

  /** Mounts `strata mount` made that are not mounted now (after a reboot, or a --no-takeover start): for the caller to mount again. */
  restorable(): DesiredMount[] {
    return (this.desired?.list() ?? []).filter((m) => !this.mounts.has(m.mountpoint));
  }

  has(mountpoint: string): boolean {
    return this.mounts.has(mountpoint);
  }

  /** Detaches a strata mount at `mountpoint` whose server is gone (ENOTCONN to every reader); anything else is left alone. */
  private async clearDeadAt(mountpoint: string): Promise<void> {
    if (this.mounts.has(mountpoint) || !hasStrataMount(await readMountTable(), mountpoint)) return;
    if ((await mountLiveness(mountpoint)) !== 'dead') return;
    await unmount(mountpoint, true);
    this.log.warn({ event: 'agent.stale_mount_cleared', mountpoint, reason: 'desired' }, 'cleared a dead mount where a mount of the desired state goes');
  }

  private async saveState(): Promise<void> {
    await this.state.write([...this.mounts.values()].map((m) => ({ mountpoint: m.info.mountpoint, layerId: m.info.layerId })));
  }

  /**
   * Mounts a layer. `caller` is the control-socket user who asked (absent:
   * the agent's own --mount). Root, and the agent itself, mount as before;
   * anyone else only what the policy grants them, on an empty directory of
   * their own, nosuid and nodev (access/). Audited either way.
   */
  async mount(layerText: string, mountpointText: string, request: MountRequest = {}): Promise<MountInfo> {
    const caller = request.caller;
    const actor: Actor = caller ?? 'agent';
    try {
      if (!path.isAbsolute(mountpointText)) throw StrataError.invalid(`mountpoint must be an absolute path: ${mountpointText}`);
      const mountpoint = path.resolve(mountpointText);
      if (this.busy.has(mountpoint)) throw StrataError.precondition(`${mountpoint} is being mounted or unmounted right now`);
      this.busy.add(mountpoint);
      let info: MountInfo;
      let allowOther: boolean;
      try {
        // A mount of the desired state may find its own dead mount there (a crash before it was listed): cleared first.
        if (request.restored) await this.clearDeadAt(mountpoint);
        ({ info, allowOther } = await this.mountAt(layerText, mountpoint, caller, request.hard === true));
        if (request.desired) await this.desired?.add({ layer: layerText, mountpoint, hard: request.hard === true, ...(caller ? { caller } : {}) });
      } finally {
        this.busy.delete(mountpoint);
      }
      if (request.restored) this.log.info({ event: 'agent.mount_restored', mountpoint, layer: layerText, layerId: info.layerId, hard: request.hard === true }, 'mounted again from the desired state');
      this.audit.mount(actor, layerText, mountpoint, { ok: { layerId: info.layerId, flags: info.flags.join(','), allowOther } });
      return info;
    } catch (err) {
      this.audit.mount(actor, layerText, mountpointText, { err });
      throw err;
    }
  }

  private async mountAt(layerText: string, mountpoint: string, caller: HostUser | undefined, hard: boolean): Promise<{ info: MountInfo; allowOther: boolean }> {
    const existing = this.mounts.get(mountpoint);
    if (existing) throw StrataError.precondition(`${mountpoint} is already a strata mount (layer ${existing.info.layerId})`);
    for (const m of this.mounts.keys()) {
      // Mounting inside our own mount would make the kernel wait on this very thread.
      if (mountpoint.startsWith(`${m}/`)) throw StrataError.invalid(`${mountpoint} lies inside the strata mount at ${m}`);
    }
    const ref = parseLayerRef(layerText);
    const asUser = caller !== undefined && caller.uid !== 0 ? caller : undefined;
    // Root keeps allow_other on every mount; a user's mount lets other users in only where the policy lets every host user read the layer.
    let allowOther = true;
    let dir: fs.FileHandle | undefined;
    if (asUser) {
      // Asked before the layer is looked up: a refusal says nothing about whether it exists.
      const grant = await hostUserMayMount((identity, r) => this.client.checkAccess(identity, r), asUser, layerText, ref);
      allowOther = grant.everyHostUser;
      dir = await openUserMountpoint(mountpoint, asUser.uid, await readMountTable());
    } else {
      await this.checkMountpoint(mountpoint);
    }
    try {
      const privateTo = asUser && !allowOther ? { uid: asUser.uid, gid: asUser.gid } : undefined;
      // A revoked grant withdraws the mount at the next report round: the native cache would otherwise keep answering.
      const recheck = asUser ? this.grantRecheck(asUser, layerText, allowOther) : undefined;
      const info = await this.mountLayer(layerText, ref, mountpoint, caller ?? 'agent', allowOther, dir, hard, privateTo, recheck, asUser);
      return { info, allowOther };
    } finally {
      await dir?.close();
    }
  }

  /** Whether a host user's mount may stay: a reason to withdraw it, or undefined (asked each report round). */
  private grantRecheck(user: HostUser, layerText: string, allowOther: boolean): () => Promise<string | undefined> {
    const ref = parseLayerRef(layerText);
    return async () => {
      try {
        const now = await hostUserMayMount((identity, r) => this.client.checkAccess(identity, r), user, layerText, ref);
        return allowOther && !now.everyHostUser ? `layer ${JSON.stringify(layerText)} is no longer granted to every host user` : undefined;
      } catch (err) {
        return isStrataError(err) && err.errno === Errno.EACCES ? `the grant that let uid ${user.uid} mount ${JSON.stringify(layerText)} was revoked` : undefined;
      }
    };
  }

  private async mountLayer(
    layerText: string,
    ref: ReturnType<typeof parseLayerRef>,
    mountpoint: string,
    owner: Actor,
    allowOther: boolean,
    dir: fs.FileHandle | undefined,
    hard: boolean,
    privateTo?: { uid: number; gid: number },
    recheck?: () => Promise<string | undefined>,
    hostUser?: HostUser,
  ): Promise<MountInfo> {
    let chain: Layer[];
    try {
      chain = (await this.client.getLayer(ref)).chain;
    } catch (err) {
      if (isStrataError(err) && err.errno === Errno.ENOENT) throw StrataError.notFound(`layer ${JSON.stringify(layerText)} does not exist`);
      throw StrataError.from(err, 'looking up the layer');
    }
    const spec: MountSpec = { layerText, chain, mountpoint, owner, allowOther, privateTo, recheck, ...(hostUser ? { hostUser } : {}), id: `${process.pid.toString(36)}-${(++this.mountSeq).toString(36)}-${randomBytes(4).toString('hex')}`, hard };
    const m = await Mount.create(spec, this.mountContext, dir);
    this.adopted(m);
    await this.hold(m);
    await this.saveState();
    // Protected from deletion as soon as the caller hears it is mounted.
    await this.reporter.changed();
    // How cached file data reaches the kernel is the kernel's and the agent's privilege's decision, taken at INIT.
    const dataServing = m.live || this.disk.maxBytes === 0 ? 'agent' : m.session.passthroughAvailable ? 'passthrough' : 'pread';
    this.log.info({ event: 'agent.mounted', ...m.info, dataServing, fileOpens: m.fileOpens, allowOther, auditOpens: m.audited, owner: owner === 'agent' ? 'agent' : owner.uid }, 'mounted');
    if (!m.live && this.o.prefetchEntries > 0) this.prefetch(m);
    return m.info;
  }

  /** A mount now served by this agent: listed, and forgotten as soon as the kernel lets go of it behind the agent's back. */
  private adopted(m: Mount): void {
    const mountpoint = m.mountpoint;
    this.mounts.set(mountpoint, m);
    // Unmounted behind the agent's back (umount -l, a connection abort): forgotten as soon as the kernel lets go.
    void m.session.closed.then(async (reason) => {
      // Released: handed over on purpose, the mount stays.
      if (reason === 'unmount' || reason === 'released' || this.mounts.get(mountpoint) !== m || this.busy.has(mountpoint)) return;
      this.log.warn({ event: 'agent.mount_vanished', mountpoint, reason }, 'mount was removed outside the agent');
      this.audit.unmount('agent', String(m.info.layerId), mountpoint, { ok: { how: 'vanished' } });
      await this.forget(m);
    });
  }

  private async checkMountpoint(mountpoint: string): Promise<void> {
    let st;
    try {
      st = await fs.stat(mountpoint);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw StrataError.notFound(`mountpoint ${mountpoint} does not exist`);
      if (code === 'ENOTCONN') throw StrataError.precondition(`${mountpoint} is a dead FUSE mount; clear it with \`umount -l ${mountpoint}\``);
      throw StrataError.from(err, `mountpoint ${mountpoint}`);
    }
    if (!st.isDirectory()) throw StrataError.notDir(`mountpoint ${mountpoint} is not a directory`);
    const taken = (await readMountTable()).find((t) => t.mountpoint === mountpoint);
    if (taken) throw StrataError.precondition(`${mountpoint} is already a mount point (${taken.fstype} ${taken.source})`);
  }

  private prefetch(m: Mount): void {
    const ctl = new AbortController();
    m.prefetch = ctl;
    const started = Date.now();
    const walk = this.client.walk({ id: m.info.layerId }, '/', { includeLinkTargets: true });
    const guarded = (async function* () {
      for await (const batch of walk) {
        if (ctl.signal.aborted) return;
        yield batch;
        // Batches already received resolve as microtasks: without a turn of the event loop between them, the
        // mount's first READs (and every other mount's requests) wait for the whole walk to be taken in.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    })();
    // Each complete directory also names its large files to hand over ahead of their first READ (kernel opens, store view).
    const prefetched = m.fs.prefetch(guarded, this.o.prefetchEntries, nativePrefetchSink(m.session, m.nodes, (dir, entries) => m.listed(dir, entries)));
    m.largeAheadAfter(prefetched);
    prefetched.then(
      (r) =>
        this.log.info(
          { event: 'agent.prefetch.done', mountpoint: m.info.mountpoint, entries: r.entries, complete: r.complete, ms: Date.now() - started },
          r.complete ? 'metadata prefetched' : 'tree larger than the prefetch limit: prefetched part of it',
        ),
      (err: unknown) => this.log.warn({ event: 'agent.prefetch.failed', mountpoint: m.info.mountpoint, err: StrataError.from(err, 'walk').message }, 'prefetch failed; serving on demand'),
    );
  }

  /** Unmounts; `caller` other than root may unmount only a mount they made. Audited either way. */
  async umount(mountpointText: string, lazy = false, caller?: HostUser): Promise<void> {
    const actor: Actor = caller ?? 'agent';
    const mountpoint = path.resolve(mountpointText);
    const m = this.mounts.get(mountpoint);
    try {
      if (!m) throw StrataError.invalid(`${mountpoint} is not a strata mount of this agent`);
      if (caller && caller.uid !== 0 && (m.owner === 'agent' || m.owner.uid !== caller.uid)) {
        throw new StrataError(Errno.EPERM, `${mountpoint} was not mounted by you: only its owner or root may unmount it`);
      }
      if (this.busy.has(mountpoint)) throw StrataError.precondition(`${mountpoint} is being mounted or unmounted right now`);
      this.busy.add(mountpoint);
      try {
        await this.detach(m, lazy ? 'lazy' : 'strict');
        await this.desired?.remove(mountpoint);
      } finally {
        this.busy.delete(mountpoint);
      }
    } catch (err) {
      this.audit.unmount(actor, m ? String(m.info.layerId) : undefined, mountpoint, { err });
      throw err;
    }
    this.audit.unmount(actor, String(m.info.layerId), mountpoint, { ok: { lazy } });
  }

  private async detach(m: Mount, how: DetachHow): Promise<void> {
    await m.detach(how);
    await this.forget(m);
    this.log.info({ event: 'agent.unmounted', mountpoint: m.info.mountpoint, layerId: m.info.layerId, lazy: how !== 'strict' }, 'unmounted');
  }

  /** Drops a mount whose kernel side is gone: its prefetch, native state, caches and state-file line. */
  private async forget(m: Mount): Promise<void> {
    if (this.mounts.get(m.info.mountpoint) !== m) return;
    this.mounts.delete(m.info.mountpoint);
    m.prefetch?.abort();
    // A lazily detached session keeps serving files still open and ends when the kernel lets go; its caches go with it.
    m.disposeWhenClosed();
    m.journal?.close();
    await this.dropHeld(m.id, undefined);
    await this.saveState();
    void this.reporter.changed();
  }

  /**
   * A layer of the mount was deleted or changed by force: the mount goes
   * (lazily, so open files fail instead of blocking), rather than showing a
   * tree that is half the old layer and half the new.
   */
  private async withdraw(mountpoint: string, reason: string): Promise<void> {
    const m = this.mounts.get(mountpoint);
    if (!m || this.busy.has(mountpoint)) return;
    this.busy.add(mountpoint);
    try {
      this.log.warn({ event: 'agent.mount_withdrawn', mountpoint, layerId: m.info.layerId, reason }, 'mount withdrawn: its layers or its grant changed under it');
      await this.detach(m, 'forced');
      await this.desired?.remove(mountpoint);
      this.audit.unmount('agent', String(m.info.layerId), mountpoint, { ok: { how: 'withdrawn', reason } });
    } finally {
      this.busy.delete(mountpoint);
    }
  }

  /** The live mounts; ones unmounted behind the agent's back (umount(8)) are forgotten here. */
  async list(): Promise<MountInfo[]> {
    const table = await readMountTable();
    for (const m of [...this.mounts.values()]) {
      if (this.busy.has(m.info.mountpoint)) continue;
      if (!hasStrataMount(table, m.info.mountpoint)) {
        this.log.warn({ event: 'agent.mount_vanished', mountpoint: m.info.mountpoint }, 'mount was removed outside the agent');
        this.audit.unmount('agent', String(m.info.layerId), m.info.mountpoint, { ok: { how: 'vanished' } });
        await this.forget(m);
      }
    }
    return [...this.mounts.values()].map((m) => this.withHealth(m));
  }

  private stateOf(m: Mount): MountInfo['state'] & string {
    return m.health.report(this.outages.current !== undefined).state;
  }

  /** The mount as listed: its info and how it serves now (the details only when it does not). */
  private withHealth(m: Mount): MountInfo {
    const { state, ...health } = m.health.report(this.outages.current !== undefined);
    return { ...m.info, fileOpens: m.fileOpens, state, ...(state !== 'serving' || health.consecutiveFailures > 0 ? { health } : {}) };
  }

  /**
   * Resolvers that did not answer at start: checked (and, while away, probed
   * until back) as a broken stream would be, so /healthz and status say so
   * even before any mount opens a stream to them.
   */
  unansweredAtStart(addresses: readonly string[]): void {
    for (const a of addresses) void this.outages.streamBroken(a, 'no answer at start');
  }

  get mountCount(): number {
    return this.mounts.size;
  }

  /** What /healthz on the metrics listener says: ready while some resolver answers. */
  healthState(): { ok: boolean; detail: string } {
    if (this.outages.current) return { ok: false, detail: 'no resolver answers' };
    const states = this.resolvers.list();
    if (states.length > 0 && states.every((r) => r.state === 'unreachable')) return { ok: false, detail: 'every resolver is unreachable' };
    return { ok: true, detail: 'serving' };
  }

  /** The agent's part of `strata status`. */
  async view(): Promise<AgentView> {
    const mounts = await this.list();
    const outage = this.outages.current;
    const disk = this.disk.stats();
    return {
      resolvers: this.resolvers.list(),
      ...(outage ? { outage: { since: new Date(outage.since).toISOString(), failedOps: outage.failedOps } } : {}),
      dataCache: { dir: this.disk.dir, maxBytes: this.disk.maxBytes, bytes: disk.bytes, files: disk.files },
      chunkCache: this.chunks.usage,
      mounts,
    };
  }

  /**
   * SIGTERM/SIGINT: every mount the holder keeps is handed over (its session
   * released, nothing unmounted: the next agent serves on); the rest, and
   * every mount with `handover` false (--no-takeover), are detached (lazily:
   * open files must not block shutdown).
   */
  async stop(handover = true): Promise<void> {
    let handed = 0;
    const journal = { writes: 0, bytes: 0, appendMs: 0, rewrites: 0, rewriteMs: 0 };
    for (const m of this.mounts.values()) {
      const st = m.journal?.stats;
      if (!st) continue;
      journal.writes += st.writes;
      journal.bytes += st.bytes;
      journal.appendMs += st.appendNs / 1e6;
      journal.rewrites += st.rewrites;
      journal.rewriteMs += st.rewriteMs;
    }
    journal.appendMs = Math.round(journal.appendMs * 10) / 10;
    journal.rewriteMs = Math.round(journal.rewriteMs);
    if (handover && (this.holder || this.systemd) && this.o.stateDir !== undefined) {
      for (const m of [...this.mounts.values()]) {
        if (!m.held) continue;
        try {
          this.mounts.delete(m.mountpoint);
          await m.release();
          handed++;
        } catch (err) {
          this.mounts.set(m.mountpoint, m);
          this.log.error({ event: 'agent.handover_failed', mountpoint: m.mountpoint, err: StrataError.from(err).message }, 'could not hand the mount over: unmounted');
        }
      }
      await this.holder?.bye().catch((err: unknown) => this.log.warn({ event: 'agent.holder_failed', err: StrataError.from(err).message }, 'the fd holder did not hear the goodbye'));
      if (handed > 0) this.log.info({ event: 'agent.handed_over', mounts: handed }, 'mounts left to the next agent');
    }
    for (const m of [...this.mounts.values()]) {
      await this.detach(m, 'forced').then(
        () => this.audit.unmount('agent', String(m.info.layerId), m.info.mountpoint, { ok: { how: 'shutdown' } }),
        (err: unknown) => {
          this.audit.unmount('agent', String(m.info.layerId), m.info.mountpoint, { err });
          this.log.error({ event: 'agent.umount_failed', mountpoint: m.info.mountpoint, err: StrataError.from(err, 'umount').message }, 'unmount at shutdown failed');
        },
      );
    }
    // Mounts handed over stay in use: the layers they show must stay protected until the successor reports them.
    await this.reporter.stop(handed === 0);
    this.holder?.close();
    this.outages.close();
    this.session.close();
    this.client.close();
    const dataCache = this.disk.stats();
    await this.mountContext.storeView?.close();
    await this.disk.close().catch((err: unknown) => this.log.warn({ event: 'agent.data_cache.cleanup_failed', dir: this.disk.dir, err: StrataError.from(err).message }, 'data cache not removed'));
    this.log.info({ event: 'agent.stopped', handedOver: handed, nodeJournal: journal, chunkHits: this.chunks.hits, chunkMisses: this.chunks.misses, dataCache }, 'agent stopped');
  }
}
