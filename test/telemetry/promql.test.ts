import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { StrataClient } from '@strata/client';
import { REPO, freePort, startResolver, type ResolverProcess } from '@strata/harness';
import { makeStore, type StoreFixture } from '../support/store-fixture';

/**
 * Issue 23 item 13: the PromQL of docs/operations.md is valid — it parses
 * as far as the mistakes people make go (brackets, quotes, a rate() without
 * its range), and every metric it names is one strata exports. Exported
 * names come from the instruments declared in the source (dots to
 * underscores, `_total` for counters, `_bucket`/`_sum`/`_count` for
 * histograms); a real resolver's /metrics proves that rule.
 */

const OPERATIONS_MD = path.join(REPO, 'docs/operations.md');

/** The ```promql blocks of a Markdown text. */
function promqlBlocks(text: string): string[] {
  return [...text.matchAll(/^\s*```promql\n([\s\S]*?)\n\s*```/gm)].map((m) => m[1].trim());
}

const INSTRUMENT = /\b(createHistogram|latencyHistogram|createCounter|createObservableCounter|createUpDownCounter|createObservableUpDownCounter|createObservableGauge|createGauge)\(\s*'(strata\.[a-z0-9_.]+)'/g;

function sourcesUnder(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!['node_modules', 'dist', 'gen'].includes(e.name)) sourcesUnder(p, out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) {
      out.push(p);
    }
  }
  return out;
}

/** Every Prometheus series name the source declares. */
function declaredNames(): Set<string> {
  const names = new Set<string>(['target_info']);
  for (const top of ['services', 'libs']) {
    for (const file of sourcesUnder(path.join(REPO, top))) {
      for (const m of fs.readFileSync(file, 'utf8').matchAll(INSTRUMENT)) {
        const base = m[2].replace(/\./g, '_');
        if (m[1] === 'createHistogram' || m[1] === 'latencyHistogram') for (const s of ['_bucket', '_sum', '_count']) names.add(base + s);
        else if (m[1] === 'createCounter' || m[1] === 'createObservableCounter') names.add(`${base}_total`);
        else names.add(base);
      }
    }
  }
  return names;
}

const RANGE_FUNCTIONS = /\b(rate|irate|increase|delta|idelta|deriv|changes|resets|[a-z]+_over_time)\s*\(/g;

/** What is wrong with one expression, as far as these checks see. */
function problems(q: string, known: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let quote: string | undefined;
  for (const ch of q) {
    if (quote) {
      if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'") quote = ch;
    else if ('([{'.includes(ch)) stack.push(ch);
    else if (ch in pairs && stack.pop() !== pairs[ch]) out.push(`unbalanced ${ch}`);
  }
  if (quote) out.push('unclosed quote');
  if (stack.length > 0) out.push(`unclosed ${stack.join('')}`);
  for (const m of q.matchAll(RANGE_FUNCTIONS)) {
    // The argument of the call: up to its closing parenthesis.
    let depth = 0;
    let end = m.index + m[0].length;
    for (; end < q.length; end++) {
      if (q[end] === '(') depth++;
      if (q[end] === ')') {
        if (depth === 0) break;
        depth--;
      }
    }
    const arg = q.slice(m.index + m[0].length, end);
    if (!/\[[0-9]+[smhdwy]\]\s*$/.test(arg)) out.push(`${m[1]}() without a range vector ([5m]): ${m[1]}(${arg})`);
  }
  for (const name of q.match(/\bstrata_[a-z0-9_]+/g) ?? []) if (!known.has(name)) out.push(`strata exports no ${name}`);
  if (!/\bstrata_[a-z0-9_]+/.test(q)) out.push('names no strata metric');
  return out;
}

function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 5 s`)));
    req.on('error', reject);
  });
}

describe('PromQL in docs/operations.md', () => {
  let fx: StoreFixture;
  let resolver: ResolverProcess;
  let metricsPort = 0;

  before(async () => {
    fx = await makeStore([{ entries: [{ type: 'file', path: '/etc/hostname', content: 'q\n' }] }]);
    metricsPort = await freePort();
    resolver = await startResolver({ store: fx.store, extra: ['--metrics-listen', `127.0.0.1:${metricsPort}`] });
    const c = new StrataClient({ resolver: resolver.address, deadlineMs: 5000 });
    try {
      await c.readFile({ id: fx.layers[0].layerId }, '/etc/hostname');
    } finally {
      c.close();
    }
  });

  after(async () => {
    await resolver?.stop();
    fx?.cleanup();
  });

  test('the naming rule holds: every strata series a real resolver exports is one the source declares', async () => {
    const known = declaredNames();
    const body = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    const exported = new Set([...body.matchAll(/^(strata_[a-z0-9_]+)[{ ]/gm)].map((m) => m[1]));
    assert.ok(exported.size >= 10, [...exported].join(' '));
    assert.deepEqual([...exported].filter((n) => !known.has(n)), []);
  });

  test('every query parses and names only metrics strata exports; rate() and friends have their range', () => {
    const queries = promqlBlocks(fs.readFileSync(OPERATIONS_MD, 'utf8'));
    assert.ok(queries.length >= 5, `${queries.length} promql blocks`);
    const known = declaredNames();
    const found = queries.flatMap((q) => problems(q, known).map((p) => `${q}\n  -> ${p}`));
    assert.deepEqual(found, []);
  });

  test('the checks catch what they are for', () => {
    const known = declaredNames();
    assert.match(problems('rate(strata_cache_requests_total{result="hit"}) / rate(strata_cache_requests_total)', known).join(), /without a range vector/);
    assert.match(problems('sum(rate(strata_nope_total[5m]))', known).join(), /exports no strata_nope_total/);
    assert.match(problems('sum(rate(strata_cache_requests_total[5m])', known).join(), /unclosed/);
    assert.deepEqual(problems('sum by (tier) (rate(strata_cache_requests_total[5m]))', known), []);
  });
});
