import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { ProjectionServiceService } from './gen/strata/v1/projection';
import type { SessionRequest, SessionResponse } from './gen/strata/v1/session';
import { strataErrorFromInfo } from './status-details';

/**
 * The projection operations, defined once. Each is a unary ProjectionService
 * method and a case of the Session stream with the same request and answer
 * messages; the resolver serves one handler per operation through both
 * entry points, and clients send and check answers through the same table.
 */
export type RequestCase = NonNullable<SessionRequest['request']>;
export type AnswerCase = NonNullable<SessionResponse['response']>;
/** The operations: 'stat' | 'readDir' | 'read' | 'readLink' | 'listXattr' | 'getXattr' | 'statFs'. */
export type Operation = RequestCase['$case'];
export type RequestOf<K extends Operation> = Extract<RequestCase, { $case: K }> extends infer C ? (C extends Record<K, infer R> ? R : never) : never;
export type AnswerOf<K extends Operation> = Extract<AnswerCase, { $case: K }> extends infer C ? (C extends Record<K, infer R> ? R : never) : never;

export interface OperationInfo {
  /** The unary ProjectionService method carrying the same request. */
  method: string;
  /** Safe to repeat on another resolver after a transport failure: every projection operation only reads. */
  idempotent: boolean;
  /** The unary method streams its answer (Read sends a large range in chunks; over a Session it is one bounded answer). */
  unaryStreams: boolean;
}

export const OPERATIONS: { readonly [K in Operation]: OperationInfo } = {
  stat: { method: 'Stat', idempotent: true, unaryStreams: false },
  readDir: { method: 'ReadDir', idempotent: true, unaryStreams: false },
  read: { method: 'Read', idempotent: true, unaryStreams: true },
  readLink: { method: 'ReadLink', idempotent: true, unaryStreams: false },
  listXattr: { method: 'ListXattr', idempotent: true, unaryStreams: false },
  getXattr: { method: 'GetXattr', idempotent: true, unaryStreams: false },
  statFs: { method: 'StatFs', idempotent: true, unaryStreams: false },
};

export function isOperation(name: string): name is Operation {
  return Object.prototype.hasOwnProperty.call(OPERATIONS, name);
}

/** One handler per operation; the context is whatever the server passes along (trace, caller). */
export type OperationHandlers<Ctx = void> = { readonly [K in Operation]: (req: RequestOf<K>, ctx: Ctx) => Promise<AnswerOf<K>> };

/** A Session request payload for an operation. */
export function requestCase<K extends Operation>(op: K, req: RequestOf<K>): RequestCase {
  // The oneof is keyed by its own case name; ts-proto spells it as a union TypeScript cannot build from a generic key.
  return { $case: op, [op]: req } as unknown as RequestCase;
}

/** The answer case for an operation's result. */
export function answerCase<K extends Operation>(op: K, res: AnswerOf<K>): AnswerCase {
  return { $case: op, [op]: res } as unknown as AnswerCase;
}

/** The request inside a Session request case, with its operation. */
export function requestOf(r: RequestCase): { op: Operation; req: RequestOf<Operation> } {
  return { op: r.$case, req: (r as unknown as Record<Operation, RequestOf<Operation>>)[r.$case] };
}

/**
 * The answer to an operation out of a Session response: the errno the
 * resolver decided when it answered with an error, EIO when it answered
 * something else (a confused or hostile peer), the typed answer otherwise.
 */
export function answerOf<K extends Operation>(op: K, response: SessionResponse['response']): AnswerOf<K> {
  if (response?.$case === 'error') throw strataErrorFromInfo(response.error);
  // INTERNAL, not UNAVAILABLE: a resolver answered, wrongly; that is no outage to wait out or retry elsewhere.
  if (response?.$case !== op) throw new StrataError(Errno.EIO, `resolver answered ${response?.$case ?? 'nothing'} to a ${op} request`, { code: GrpcCode.INTERNAL });
  return (response as unknown as Record<K, AnswerOf<K>>)[op];
}

/** Runs the handler of a request case and wraps its result as the answer case. */
export async function dispatchCase<Ctx>(handlers: OperationHandlers<Ctx>, r: RequestCase, ctx: Ctx): Promise<AnswerCase> {
  return runCase(handlers, r.$case, (r as unknown as Record<Operation, RequestOf<Operation>>)[r.$case], ctx);
}

async function runCase<K extends Operation, Ctx>(handlers: OperationHandlers<Ctx>, op: K, req: RequestOf<K>, ctx: Ctx): Promise<AnswerCase> {
  const handler = handlers[op] as (req: RequestOf<K>, ctx: Ctx) => Promise<AnswerOf<K>>;
  return answerCase(op, await handler(req, ctx));
}

/** Operations whose unary method answers once (Read streams its range instead). */
export type UnaryOperation = Exclude<Operation, 'read'>;

/** How an operation travels as a unary call: grpc-js path and codecs. */
export interface UnaryMethod<K extends UnaryOperation> {
  path: string;
  serialize: (req: RequestOf<K>) => Buffer;
  deserialize: (bytes: Buffer) => AnswerOf<K>;
}

/** The unary method of an operation, from the generated service definition. */
export function unaryMethod<K extends UnaryOperation>(op: K): UnaryMethod<K> {
  // The definition is keyed by the same names; TypeScript cannot carry a generic key through it.
  const d = ProjectionServiceService[op] as unknown as { path: string; requestSerialize: (req: RequestOf<K>) => Buffer; responseDeserialize: (bytes: Buffer) => AnswerOf<K> };
  return { path: d.path, serialize: d.requestSerialize, deserialize: d.responseDeserialize };
}
