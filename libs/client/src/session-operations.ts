import { answerOf, requestCase, type AnswerOf, type Operation, type RequestOf } from '@strata/protocol';
import type { SessionAnswer, SessionPayload } from './session-client';

/** Anything that carries Session requests: a SessionClient, a SessionGroup, a fake in tests. */
export interface SessionRequester {
  request(payload: SessionPayload, traceContext?: Record<string, string>): Promise<SessionAnswer>;
}

/** One operation over a Session: its own kind of answer, or a StrataError (EIO for an answer of another kind). */
export type Ask = <K extends Operation>(op: K, req: RequestOf<K>) => Promise<AnswerOf<K>>;

/**
 * Typed operations over a Session, from the protocol's operation table.
 * `traceContext` gives each request the caller's trace (the agent passes the
 * FUSE operation's span).
 */
export function operationsOver(session: SessionRequester, traceContext: () => Record<string, string> = () => ({})): Ask {
  return async <K extends Operation>(op: K, req: RequestOf<K>): Promise<AnswerOf<K>> => answerOf(op, await session.request(requestCase(op, req), traceContext()));
}
