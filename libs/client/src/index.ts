export { StrataClient } from './strata-client';
export type { ClientOptions, CreateLayerOptions, UpdateLayerOptions, Change } from './strata-client';
export { SessionClient } from './session-client';
export { SessionGroup } from './session-group';
export type { SessionClientOptions, SessionPayload, SessionAnswer } from './session-client';
export { DEFAULT_RESOLVER, Endpoint, EndpointPool, parseAddresses } from './endpoints';
export { DEFAULT_RETRY, isRetryable, withRetry } from './retry';
export type { RetryPolicy } from './retry';
