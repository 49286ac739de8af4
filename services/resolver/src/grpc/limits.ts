/**
 * What one client may hold of the resolver at a time. Every bound here is
 * per caller, so that one client that floods, or stops reading, costs a
 * bounded share of the process and the others keep being served.
 */
export interface ServerLimits {
  /** Largest request message accepted; a bigger one is refused with RESOURCE_EXHAUSTED before it is parsed. */
  maxMessageBytes: number;
  /**
   * Calls (unary, Read/Walk/Diff streams, Sessions) one identity may have
   * open at once over all its connections; also each connection's HTTP/2
   * SETTINGS_MAX_CONCURRENT_STREAMS, which is the bound where there is no
   * identity (plaintext, TLS without client certificates).
   */
  maxStreamsPerIdentity: number;
  /** Requests of one Session being answered or whose answer the client has not taken yet. */
  sessionInflight: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxMessageBytes: 1 << 20,
  maxStreamsPerIdentity: 32,
  sessionInflight: 64,
};

/** The smallest --max-message-bytes that still lets every request of the API through with a long path (PATH_MAX 4096 plus the envelope). */
export const MIN_MESSAGE_BYTES = 8192;
