import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HAVE_REDIS, freePort, redisCli, waitFor } from '@strata/harness';
import { DEPLOY } from './deploy-files';

/**
 * The Redis files of deploy/ load in the installed redis-server and make it
 * a cache: bounded memory, any key evictable, nothing written to disk.
 */

const FILES = ['systemd/redis-strata-cache.conf', 'k8s/redis.conf'];

describe('Redis cache configurations', { skip: HAVE_REDIS ? false : 'needs redis-server' }, () => {
  for (const rel of FILES) {
    test(`${rel} loads and configures a cache that never persists`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-redis-conf-'));
      const port = await freePort();
      // Only where it listens and writes is changed: everything else is the file's.
      const child = spawn(
        'redis-server',
        [path.join(DEPLOY, rel), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--pidfile', path.join(dir, 'pid'), '--supervised', 'no', '--daemonize', 'no'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        await waitFor(
          `redis-server with ${rel}`,
          () => {
            if (child.exitCode !== null) throw new Error(`redis-server exited ${child.exitCode}: ${output}`);
            try {
              return redisCli(port, 'ping') === 'PONG' ? true : undefined;
            } catch {
              return undefined;
            }
          },
          10_000,
        );
        const get = (name: string): string => redisCli(port, 'config', 'get', name).split('\n')[1] ?? '';
        assert.equal(get('maxmemory-policy'), 'allkeys-lru');
        assert.ok(Number(get('maxmemory')) >= 64 << 20, `maxmemory ${get('maxmemory')}`);
        assert.equal(get('save'), '');
        assert.equal(get('appendonly'), 'no');
        // A full cache still takes writes: it evicts instead of refusing them.
        redisCli(port, 'config', 'set', 'maxmemory', '2mb');
        const value = 'x'.repeat(64 << 10);
        for (let i = 0; i < 100; i++) assert.equal(redisCli(port, 'set', `k${i}`, value), 'OK');
        assert.ok(Number(redisCli(port, 'dbsize')) < 100);
        assert.deepEqual(
          fs.readdirSync(dir).filter((f) => f !== 'pid'),
          [],
          'nothing was written to disk',
        );
      } finally {
        child.kill('SIGKILL');
        await exited;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
