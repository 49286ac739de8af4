import { AuditLog, type AuditEvent, type AuditResult } from '@strata/audit';
import { StrataError, errnoName } from '@strata/errors';
import type { Logger } from '@strata/telemetry';
import { describeUser } from '../access/host-user';
import { PasswdNames } from './passwd-names';

/** Who asked, as the audit trail names them: a control-socket caller (SO_PEERCRED), or the agent itself. */
export type Actor = { uid: number; pid: number; name?: string | undefined } | 'agent';

type Detail = Record<string, string | number | boolean>;

function who(actor: Actor): { identity: string; detail: Detail } {
  if (actor === 'agent') return { identity: 'agent', detail: {} };
  return { identity: describeUser(actor), detail: { uid: actor.uid, pid: actor.pid } };
}

/** denied for a refusal the caller could not get past (EACCES, EPERM, a bad mountpoint...), failed for everything else. */
function outcome(err: unknown): { result: AuditResult; reason: string; errno: string } {
  const e = StrataError.from(err);
  const errno = errnoName(e.errno);
  const denied = ['EACCES', 'EPERM', 'ELOOP', 'ENOTEMPTY', 'ENOTDIR', 'EINVAL', 'EAGAIN', 'ETIMEDOUT', 'EOPNOTSUPP'].includes(errno);
  return { result: denied ? 'denied' : 'failed', reason: e.message, errno };
}

/**
 * The agent's audit stream (its own file, never the service log): every
 * mount and unmount with who asked and how it ended, and every control
 * request refused before it reached them. Writing never throws into the
 * operation being audited.
 */
export class AgentAudit {
  private readonly users = new PasswdNames();

  private constructor(private readonly log: AuditLog | undefined) {}

  static open(file: string, log: Logger): AgentAudit {
    return new AgentAudit(
      AuditLog.open(file, {
        onError: (err, f) => log.error({ event: 'agent.audit_failed', file: f, err: err.message }, `audit log ${f} cannot be written: ${err.message}`),
      }),
    );
  }

  /** No audit file (tests that build an Agent in-process). */
  static none(): AgentAudit {
    return new AgentAudit(undefined);
  }

  get file(): string | undefined {
    return this.log?.file;
  }

  mount(actor: Actor, layer: string, mountpoint: string, result: { ok: Detail } | { err: unknown }): void {
    this.operation('mount', actor, layer, mountpoint, result);
  }

  unmount(actor: Actor, layer: string | undefined, mountpoint: string, result: { ok: Detail } | { err: unknown }): void {
    this.operation('unmount', actor, layer, mountpoint, result);
  }

  /** A control request refused as such (not JSON, too long, too slow, too many connections): coalesced, a client can repeat it at will. */
  refused(actor: Actor, reason: string, detail: Detail = {}): void {
    const w = who(actor);
    this.append({ event: 'control.denied', identity: w.identity, action: 'control', result: 'denied', reason, detail: { ...w.detail, ...detail } }, true);
  }

  /**
   * A file opened through a mount of an AUDIT layer: who on the host (the
   * FUSE request's uid/gid/pid), which path in the layer. Coalesced: a loop
   * of opens of one file by one process is one counted line per second.
   */
  fileOpened(who: { uid: number; gid: number; pid: number }, layer: string, mountpoint: string, filePath: Buffer): void {
    const name = this.users.nameOf(who.uid);
    const utf8 = filePath.toString('utf8');
    // A name that is not UTF-8 is kept exact, in base64 beside a readable approximation.
    const exact: Record<string, string> = Buffer.from(utf8, 'utf8').equals(filePath) ? {} : { pathBase64: filePath.toString('base64') };
    this.append(
      {
        event: 'file.open',
        identity: describeUser({ uid: who.uid, name }),
        action: 'open',
        layer,
        result: 'ok',
        detail: { uid: who.uid, gid: who.gid, pid: who.pid, mountpoint, path: utf8, ...exact },
      },
      true,
    );
  }

  reopen(): void {
    this.log?.reopen();
  }

  close(): Promise<void> {
    return this.log?.close() ?? Promise.resolve();
  }

  private operation(action: 'mount' | 'unmount', actor: Actor, layer: string | undefined, mountpoint: string, result: { ok: Detail } | { err: unknown }): void {
    const w = who(actor);
    if ('ok' in result) {
      this.append({ event: action, identity: w.identity, action, layer, result: 'ok', detail: { ...w.detail, mountpoint, ...result.ok } }, false);
      return;
    }
    const o = outcome(result.err);
    // Refusals are what a local user can repeat at will: coalesced. A failure of the agent's own is written every time.
    this.append({ event: action, identity: w.identity, action, layer, result: o.result, reason: o.reason, detail: { ...w.detail, mountpoint, errno: o.errno } }, o.result === 'denied');
  }

  private append(e: AuditEvent, coalesce: boolean): void {
    this.log?.append(e, { coalesce });
  }
}
