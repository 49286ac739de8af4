import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { GrpcCode, StrataError, errorMessage, isStrataError } from '@strata/errors';
import { formatLayerSelector, isHostIdentity } from '@strata/layers';
import type { SessionRequest } from '@strata/protocol';
import { wireError } from './wire-error';
import type { Logger } from '@strata/telemetry';
import type { AuditLog } from '@strata/audit';
import { type Authorizer, denied, describeRef, unauthenticated } from '../access/authorizer';
import { ACCESS_RULES, type Need, type Rule, sessionNeeds } from '../access/rules';
import { callerIdentity } from './tls';
import { undecodableOf } from './undecodable';

type AnyCall = Parameters<typeof callerIdentity>[0] & { request?: unknown; emit?(event: 'error', err: unknown): boolean };
type Handler = (call: AnyCall, callback?: (err: unknown, value?: unknown, ...rest: unknown[]) => void) => void;

/** Checks one Session request before it runs; throws the refusal. */
export type SessionAdmission = (req: SessionRequest) => Promise<void>;

/**
 * Access control, in one place: every method of every service the
 * resolver serves is wrapped here, before its handler runs. With
 * enforcement on (mutual TLS), a caller whose certificate names no identity
 * gets UNAUTHENTICATED and a request its grants do not cover gets
 * PERMISSION_DENIED with EACCES, worded from the request alone so that it
 * cannot tell a missing layer from one it may not see. Session requests are
 * checked one by one against the policy as it is at that moment. Layer and
 * policy changes (enforced or not) and every refusal go to the audit log.
 */
export class AccessControl {
  constructor(
    private readonly authz: Authorizer,
    private readonly audit: AuditLog,
    private readonly log: Logger,
  ) {}

  /** The service's handlers behind the checks; a method this module has no rule for stops the start. */
  wrap<T extends UntypedServiceImplementation>(service: string, definition: ServiceDefinition, impl: T): T {
    const out: UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(impl)) {
      const method = definition[name];
      if (!method) throw new Error(`access control: ${service}.${name} is not in the service definition`);
      const rpc = method.path.slice(method.path.lastIndexOf('/') + 1);
      const h = handler as unknown as Handler;
      if (method.requestStream) {
        if (service !== 'SessionService') throw new Error(`access control: no rule for the client stream ${service}.${rpc}`);
        out[name] = this.stream(rpc, h) as UntypedServiceImplementation[string];
        continue;
      }
      const rule = ACCESS_RULES[service]?.[name];
      if (!rule) throw new Error(`access control: no rule for ${service}.${rpc}`);
      out[name] = (method.responseStream ? this.serverStream(rpc, rule, h) : this.unary(rpc, rule, h)) as UntypedServiceImplementation[string];
    }
    return out as T;
  }

  /** The per-request check of a Session stream's caller (undefined when nothing is enforced). */
  sessionAdmission = (call: AnyCall): SessionAdmission | undefined => {
    if (!this.authz.enforced) return undefined;
    const identity = callerIdentity(call);
    return async (req) => {
      let asked: ReturnType<typeof sessionNeeds>;
      try {
        asked = sessionNeeds(req);
      } catch (err) {
        // A request without a usable layer: its handler refuses it (INVALID_ARGUMENT) without reading anything.
        if (isStrataError(err) && err.code === GrpcCode.INVALID_ARGUMENT) return;
        throw err;
      }
      const refusal = await this.refusal(identity, asked.needs);
      if (refusal) {
        this.denied(identity, asked.action, asked.layer, refusal);
        throw refusal;
      }
    };
  };

  private unary(rpc: string, rule: Rule, handler: Handler): Handler {
    return (call, callback) => {
      const respond = callback as NonNullable<typeof callback>;
      const identity = callerIdentity(call);
      this.admit(rpc, rule, identity, call.request).then(
        (refusal) => {
          if (refusal) return respond(wireError(refusal));
          if (!rule.audit) return handler(call, respond);
          handler(call, (err, value, ...rest) => {
            this.changed(rule, rpc, identity, call.request, err, value);
            respond(err, value, ...rest);
          });
        },
        (err: unknown) => respond(wireError(StrataError.from(err, rpc))),
      );
    };
  }

  private serverStream(rpc: string, rule: Rule, handler: Handler): Handler {
    return (call) => {
      const identity = callerIdentity(call);
      this.admit(rpc, rule, identity, call.request).then(
        (refusal) => (refusal ? call.emit?.('error', wireError(refusal)) : handler(call)),
        (err: unknown) => call.emit?.('error', wireError(StrataError.from(err, rpc))),
      );
    };
  }

  /** A bidirectional stream (Session): the caller must be known; each request is admitted by sessionAdmission. */
  private stream(rpc: string, handler: Handler): Handler {
    return (call) => {
      const identity = callerIdentity(call);
      if (this.authz.enforced && identity === undefined) {
        const refusal = unauthenticated();
        this.denied(identity, rpc, undefined, refusal);
        call.emit?.('error', wireError(refusal));
        return;
      }
      handler(call);
    };
  }

  /** The refusal of a call, or undefined to let it through (also for a request the handler will refuse as malformed). */
  private async admit(rpc: string, rule: Rule, identity: string | undefined, req: unknown): Promise<StrataError | undefined> {
    if (!this.authz.enforced) return undefined;
    if (identity === undefined) {
      const refusal = unauthenticated();
      this.denied(identity, rpc, undefined, refusal);
      return refusal;
    }
    if (undecodableOf(req)) return undefined;
    let needs: Need[];
    try {
      needs = rule.needs(req);
    } catch (err) {
      if (isStrataError(err) && err.code === GrpcCode.INVALID_ARGUMENT) return undefined;
      throw err;
    }
    const refusal = await this.refusal(identity, needs);
    if (refusal) this.denied(identity, rpc, rule.layer?.(req), refusal);
    return refusal;
  }

  private async refusal(identity: string | undefined, needs: readonly Need[]): Promise<StrataError | undefined> {
    if (identity === undefined) return unauthenticated();
    const authz = this.authz;
    for (const need of needs) {
      switch (need.kind) {
        case 'layer': {
          const access = await authz.callerAccess(identity, await authz.target(need.ref));
          if (!(need.permission === 'read' ? access.read : access.admin)) return denied(identity, `${need.verb} ${describeRef(need.ref)}`);
          break;
        }
        case 'name': {
          if (!(await authz.callerAccess(identity, await authz.targetOfName(need.name))).admin) {
            return denied(identity, need.name === '' ? 'create a layer without a name' : `give a layer the name "${need.name}"`);
          }
          break;
        }
        case 'source': {
          const self = need.self ? (await authz.target(need.self)).id : undefined;
          if (await authz.overlapsUnreadable(identity, need.source, need.filesystemPath, self)) {
            return denied(identity, `use source ${need.source}${need.filesystemPath ? ` path ${need.filesystemPath}` : ''}: it holds data of a layer ${identity} may not read`);
          }
          break;
        }
        case 'selector': {
          if (!(await authz.administers(identity, need.selector))) return denied(identity, `${need.verb} ${formatLayerSelector(need.selector)}`);
          break;
        }
        case 'ask': {
          if (isHostIdentity(need.identity)) break;
          if (!(await authz.callerAccess(identity, await authz.target(need.ref))).admin) {
            return denied(identity, `ask what ${need.identity} may do on ${describeRef(need.ref)} (only host users, unix-user:/unix-group:, may be asked about by any caller)`);
          }
          break;
        }
      }
    }
    return undefined;
  }

  private denied(identity: string | undefined, action: string, layer: string | undefined, err: StrataError): void {
    this.log.debug({ event: 'rpc.denied', caller: identity ?? 'anonymous', action, layer, code: err.code }, err.message);
    // A client can repeat a refused request as fast as it likes: repeats are counted, not written one by one.
    this.audit.append({ event: 'access.denied', identity: identity ?? null, action, layer, result: 'denied', reason: err.message }, { coalesce: true });
  }

  private changed(rule: Rule, rpc: string, identity: string | undefined, req: unknown, err: unknown, res: unknown): void {
    try {
      this.audit.append({
        event: rule.audit ?? 'change',
        identity: identity ?? null,
        action: rpc,
        layer: rule.layer?.(req),
        result: err ? 'failed' : 'ok',
        reason: err ? failureText(err) : undefined,
        detail: rule.detail?.(req, err ? undefined : res),
      });
    } catch (e) {
      this.log.warn({ event: 'audit.event_failed', err: errorMessage(e) }, 'could not describe a change for the audit log');
    }
  }
}

/** The message of a failed call's error as its handler sent it (a grpc-js status object). */
function failureText(err: unknown): string {
  const details = (err as { details?: unknown }).details;
  return typeof details === 'string' ? details : errorMessage(err);
}
