/**
 * How a change in a LIVE layer reaches a reader within one second
 * (strata's promise for layers of running VMs and directories still being
 * written). Every cache between the store and the reader holds a LIVE answer
 * for at most its part, and the parts are stacked in the worst case: the
 * resolver's traversal caches a directory, a record is built from that
 * directory, the agent caches the record, the kernel caches the agent's
 * answer. Their sum plus the time to answer one request stays within the
 * budget; the unit test of this module checks the arithmetic.
 */
export const LIVE_FRESHNESS = {
  /** What the promise is. */
  budgetMs: 1000,
  /** Resolver: directories the traversal engine resolved (and chain views). */
  resolverDirectoryMs: 200,
  /** Resolver: merged records (node, listing, xattrs) in the in-process and Redis tiers. */
  resolverRecordMs: 250,
  /** Agent: attributes, listings and data chunks it holds. */
  agentCacheMs: 200,
  /** Kernel: entry and attribute timeouts the agent gives a LIVE mount. */
  kernelTimeoutMs: 200,
  /** Left for the request itself: a round trip through agent, resolver and store. */
  requestMs: 150,
} as const;

/**
 * Layer catalog changes (a layer created, updated, deleted) are noticed by
 * re-reading the catalog folder, and a layer reference keeps resolving to
 * the same chain for a moment; both together stay well inside one second.
 */
export const CATALOG_FRESHNESS = {
  budgetMs: 1000,
  refreshMs: 500,
  referenceMs: 100,
} as const;
