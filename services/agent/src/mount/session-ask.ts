import type { SessionAnswer, SessionPayload } from '@strata/client';
import { answerOf, requestCase, type AnswerOf, type Operation, type RequestOf } from '@strata/protocol';
import { injectTraceContext } from '@strata/telemetry';

/** Where requests go: a SessionGroup in the agent. */
export interface SessionLike {
  request(payload: SessionPayload, traceContext?: Record<string, string>): Promise<SessionAnswer>;
}

/** One operation on the Session stream: its own kind of answer, or a StrataError (EIO for an answer of another kind). */
export type Ask = <K extends Operation>(op: K, req: RequestOf<K>) => Promise<AnswerOf<K>>;

/** Requests over `session`, each carrying the trace context of the FUSE operation it serves. */
export function askOver(session: SessionLike): Ask {
  return async <K extends Operation>(op: K, req: RequestOf<K>): Promise<AnswerOf<K>> => answerOf(op, await session.request(requestCase(op, req), injectTraceContext()));
}
