import { Cluster, Redis, type ClusterNode } from 'ioredis';
import { StrataError, errorMessage } from '@strata/errors';
import { SpanKind, inSpan } from '@strata/telemetry';
import type { CacheHit, CacheLog, MetadataCache } from './metadata-cache';

/** Redis calls are traced as part of the request that made them, never as traces of their own. */
const REDIS_SPAN = { kind: SpanKind.CLIENT, childOnly: true };
const GET_ATTRS = { 'db.system.name': 'redis', 'db.operation.name': 'GET' };
const SET_ATTRS = { 'db.system.name': 'redis', 'db.operation.name': 'SET' };

export interface RedisCacheOptions {
  /** A command slower than this counts as a miss (a stalled Redis must not stall requests). */
  commandTimeoutMs?: number;
  log: CacheLog;
}

/** URL schemes for Redis Cluster: the seed nodes are comma-separated. */
const CLUSTER_SCHEMES = ['redis+cluster:', 'redis-cluster:', 'rediss+cluster:'];

function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000);
}

function badUrl(url: string, why: string): StrataError {
  return StrataError.invalid(`redis URL ${url}: ${why}`);
}

export function parseClusterNodes(url: string): ClusterNode[] {
  const rest = url.slice(url.indexOf('//') + 2).replace(/\/.*$/, '');
  const hostPart = rest.includes('@') ? rest.slice(rest.lastIndexOf('@') + 1) : rest;
  const nodes = hostPart.split(',').filter(Boolean).map((hp) => {
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(hp);
    if (!m) throw badUrl(url, `bad node "${hp}"`);
    const port = m[2] ? Number(m[2]) : 6379;
    if (!(port > 0 && port < 65536)) throw badUrl(url, `bad port in "${hp}"`);
    return { host: m[1], port };
  });
  if (nodes.length === 0) throw badUrl(url, 'no cluster nodes');
  return nodes;
}

/** How long Redis is left alone after a failed command before one call tries it again. */
export const REST_MS = 1000;

/**
 * The shared tier: Redis standalone (`redis://host:port/db`, `rediss://`) or
 * Cluster (`redis+cluster://host:port,host:port`). Requests are never queued
 * while Redis is away (the offline queue is off): they read as misses, one
 * warning is logged per outage, and ioredis keeps reconnecting in the
 * background.
 */
export class RedisCache implements MetadataCache {
  readonly client: Redis | Cluster;
  private readonly log: CacheLog;
  private healthy = true;
  /**
   * After a failed command Redis is left alone this long (every call a miss
   * at once), then one call tries again. A Redis Cluster missing a master
   * answers nothing but CLUSTERDOWN retries until the command timeout: each
   * miss would otherwise cost that timeout for as long as the outage lasts.
   */
  private skipUntil = 0;

  constructor(url: string, options: RedisCacheOptions) {
    this.log = options.log;
    const commandTimeout = options.commandTimeoutMs ?? 250;
    const scheme = url.slice(0, url.indexOf(':') + 1);
    if (CLUSTER_SCHEMES.includes(scheme)) {
      const auth = /\/\/(?:([^:@/]*):)?([^@/]*)@/.exec(url);
      this.client = new Cluster(parseClusterNodes(url), {
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectDelay,
        redisOptions: {
          commandTimeout,
          maxRetriesPerRequest: 1,
          ...(auth ? { username: auth[1] || undefined, password: decodeURIComponent(auth[2]) } : {}),
          ...(scheme === 'rediss+cluster:' ? { tls: {} } : {}),
        },
      });
    } else if (scheme === 'redis:' || scheme === 'rediss:') {
      this.client = new Redis(url, {
        enableOfflineQueue: false,
        commandTimeout,
        maxRetriesPerRequest: 1,
        retryStrategy: reconnectDelay,
      });
    } else {
      throw badUrl(url, 'expected redis://, rediss:// or redis+cluster://');
    }
    this.client.on('error', (err: Error) => this.down(err));
    this.client.on('ready', () => {
      if (!this.healthy) this.log.info({ event: 'cache.redis.up' }, 'redis is back; shared cache in use again');
      this.healthy = true;
      this.skipUntil = 0;
    });
  }

  /** Whether Redis is being left alone after a failure (see skipUntil). */
  private resting(): boolean {
    return this.skipUntil !== 0 && Date.now() < this.skipUntil;
  }

  private answered(): void {
    this.skipUntil = 0;
    if (!this.healthy) {
      this.healthy = true;
      this.log.info({ event: 'cache.redis.up' }, 'redis is back; shared cache in use again');
    }
  }

  async get(key: string): Promise<CacheHit | undefined> {
    if (this.resting()) return undefined;
    try {
      const value = await inSpan('redis GET', GET_ATTRS, () => this.client.getBuffer(Buffer.from(key, 'latin1')), REDIS_SPAN);
      this.answered();
      return value ? { value, tier: 'redis' } : undefined;
    } catch (err) {
      this.down(err);
      return undefined;
    }
  }

  async set(key: string, value: Buffer, ttlMs?: number): Promise<void> {
    if (this.resting()) return;
    try {
      const k = Buffer.from(key, 'latin1');
      await inSpan('redis SET', SET_ATTRS, () => (ttlMs ? this.client.set(k, value, 'PX', Math.max(1, Math.round(ttlMs))) : this.client.set(k, value)), REDIS_SPAN);
      this.answered();
    } catch (err) {
      this.down(err);
    }
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  private down(err: unknown): void {
    this.skipUntil = Date.now() + REST_MS;
    if (!this.healthy) return;
    this.healthy = false;
    this.log.warn(
      { event: 'cache.redis.down', err: errorMessage(err) },
      'redis unreachable; reading the store directly until it is back',
    );
  }
}
