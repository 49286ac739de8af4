import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderReport, type ReportInput, type Results } from './report';

const KERNEL = 'kernel overlayfs';
const PLAIN = 'strata (in-process)';
const VIEW = 'strata (store view)';

function report(results: Results): string {
  const input: ReportInput = {
    date: '2026-12-07',
    machine: 'test',
    runs: 1,
    commit: 'abc1234',
    stacks: [{ name: 'generated', files: 10, peers: [KERNEL], strata: [PLAIN, VIEW], entries: {}, load: { before: '1.00, 1.00, 1.00', after: '2.00, 1.00, 1.00', low: 1, high: 2.5 } }],
    results,
    memory: { generated: { [`${VIEW} agent`]: 300 * 2 ** 20 } },
    cpu: { generated: { 'cold full read (ms)': { [VIEW]: { agent: [1500], resolver: [500] } } } },
  };
  return renderReport(input);
}

/** The targets table's row for `measure`, split into cells. */
function targetRow(text: string, measure: string): string[] {
  const table = text.slice(text.indexOf("Issue 28's targets"));
  const line = table.split('\n').find((l) => l.startsWith(`| ${measure} |`));
  assert.ok(line, `no target row for ${measure}`);
  return line.split('|').slice(1, -1).map((c) => c.trim());
}

test('each strata system is judged against its own bound: the store view ≤ 2× cold full read, the plain path ≤ 3×', () => {
  const text = report({ generated: { 'cold full read (ms)': { [KERNEL]: [1000], [PLAIN]: [2500], [VIEW]: [2500] } } });
  const [, kernel, plain, view] = targetRow(text, 'cold full read (ms)');
  assert.equal(kernel, '1,000');
  assert.match(plain, /2\.50×; ≤ 3×\) met$/);
  assert.match(view, /2\.50×; ≤ 2×\) \*\*not met\*\*$/);
});

test('cold sequential: the store view against 0.8× the kernel, the plain path against 400 MB/s', () => {
  const text = report({ generated: { '1 GiB sequential read, cold (MB/s)': { [KERNEL]: [1000], [PLAIN]: [450], [VIEW]: [700] } } });
  const [, , plain, view] = targetRow(text, '1 GiB sequential read, cold (MB/s)');
  assert.match(plain, /^450 \(0\.45×; ≥ 400 MB\/s\) met$/);
  assert.match(view, /^700 \(0\.70×; ≥ 0\.8×\) \*\*not met\*\*$/);
});

test('throughput ratios are the figure over the kernel (higher is better), times likewise (lower is better)', () => {
  const text = report({
    generated: {
      'random 4 KiB reads, cold (IOPS)': { [KERNEL]: [10_000], [PLAIN]: [5000], [VIEW]: [4999] },
      'cold walk (ms)': { [KERNEL]: [200], [PLAIN]: [300], [VIEW]: [301] },
    },
  });
  const random = targetRow(text, 'random 4 KiB reads, cold (IOPS)');
  assert.match(random[2], /0\.50×; ≥ 0\.5×\) met$/);
  assert.match(random[3], /0\.50×; ≥ 0\.5×\) \*\*not met\*\*$/);
  const walk = targetRow(text, 'cold walk (ms)');
  assert.match(walk[2], /1\.50×; ≤ 1\.5×\) met$/);
  assert.match(walk[3], /1\.50×; ≤ 1\.5×\) \*\*not met\*\*$/);
});

test('a figure missing for a system is a dash, not a verdict; a target no system has is left out', () => {
  const text = report({ generated: { 'warm full read (ms)': { [KERNEL]: [100], [VIEW]: [140] } } });
  const [, , plain, view] = targetRow(text, 'warm full read (ms)');
  assert.equal(plain, '-');
  assert.match(view, /1\.40×; ≤ 1\.5×\) met$/);
  assert.ok(!text.includes('| cold walk (ms) |'));
});

test('the report names the load, the CPU per cold figure and the peak memory of each process', () => {
  const text = report({ generated: { 'cold full read (ms)': { [KERNEL]: [1000], [VIEW]: [1200] } } });
  assert.match(text, /commit abc1234/);
  assert.match(text, /1-minute load at the figures 1\.0–2\.5/);
  assert.match(text, /\| cold full read \(ms\) \| - \| - \| 1\.5 \| 0\.5 \|/);
  assert.match(text, /\| strata \(store view\) agent \| 300 \|/);
});

test('resolver calls per cold figure are reported for each strata system', () => {
  const text = renderReport({
    date: '2026-12-07',
    machine: 'test',
    runs: 1,
    commit: 'abc1234',
    stacks: [{ name: 'generated', files: 10, peers: [KERNEL], strata: [PLAIN, VIEW], entries: {} }],
    results: { generated: { 'cold full read (ms)': { [KERNEL]: [1], [PLAIN]: [2], [VIEW]: [3] } } },
    memory: {},
    cpu: {},
    calls: { generated: { 'cold full read (ms)': { [PLAIN]: { 'Session.read': [24_000], 'Session.stat': [12], ExtentMap: [0] }, [VIEW]: { 'Session.read': [0], ExtentMap: [24_001] } } } },
  });
  assert.match(text, /\| cold full read \(ms\) \| Session\.read 24,000, Session\.stat 12 \| ExtentMap 24,001 \|/);
});
