import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AuditLog } from './index';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-audit-'));
  dirs.push(d);
  return d;
}

const lines = (file: string): Record<string, unknown>[] =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test('events are JSON lines in a 0600 file created with its folder, appended after what is there', async () => {
  const file = path.join(tempDir(), 'sub', 'audit.log');
  const first = AuditLog.open(file);
  first.append({ event: 'layer.change', identity: 'alice', action: 'CreateLayer', layer: 'vm1', result: 'ok' });
  await first.close();
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const second = AuditLog.open(file, { now: () => Date.UTC(2026, 0, 2) });
  second.append({ event: 'access.denied', identity: null, action: 'Stat', layer: '7', result: 'denied', reason: 'no identity', detail: { code: 16 } });
  await second.flush();
  const got = lines(file);
  assert.equal(got.length, 2);
  assert.deepEqual(Object.keys(got[0]), ['time', 'event', 'identity', 'action', 'layer', 'result']);
  assert.match(String(got[0].time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(got[1], { time: '2026-01-02T00:00:00.000Z', event: 'access.denied', identity: null, action: 'Stat', layer: '7', result: 'denied', reason: 'no identity', detail: { code: 16 } });
  await second.close();
});

test('reopen after a rotation: the next lines go to a new file at the path', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'audit.log');
  const log = AuditLog.open(file);
  log.append({ event: 'policy.change', identity: 'root', action: 'Grant', layer: 'vm-*', result: 'ok' });
  await log.flush();
  fs.renameSync(file, `${file}.1`);
  log.append({ event: 'policy.change', identity: 'root', action: 'Revoke', layer: 'vm-*', result: 'ok' });
  log.reopen();
  log.append({ event: 'policy.change', identity: 'root', action: 'Grant', layer: 'db', result: 'ok' });
  await log.close();
  assert.deepEqual(lines(`${file}.1`).map((l) => l.action), ['Grant', 'Revoke']);
  assert.deepEqual(lines(file).map((l) => l.layer), ['db']);
});

test('coalesced repeats: the first at once, the rest as one line with its count when the window ends', async () => {
  const file = path.join(tempDir(), 'audit.log');
  const log = AuditLog.open(file, { coalesceMs: 50 });
  const denied = { event: 'access.denied', identity: 'bob', action: 'Session.read', layer: 'vm1', result: 'denied' as const };
  for (let i = 0; i < 100; i++) log.append(denied, { coalesce: true });
  log.append({ ...denied, layer: 'vm2' }, { coalesce: true });
  await log.flush();
  assert.deepEqual(lines(file).map((l) => [l.layer, l.count]), [['vm1', undefined], ['vm2', undefined]]);
  await new Promise((r) => setTimeout(r, 120));
  log.append(denied, { coalesce: true });
  await log.close();
  // 1 + 99 + 1: every event is accounted for.
  assert.deepEqual(lines(file).map((l) => [l.layer, l.count]), [['vm1', undefined], ['vm2', undefined], ['vm1', 99], ['vm1', undefined]]);
});

test('a file that cannot be opened: append does not throw, one report, events counted as dropped', async () => {
  const dir = tempDir();
  const blocker = path.join(dir, 'not-a-dir');
  fs.writeFileSync(blocker, '');
  const errors: string[] = [];
  const log = AuditLog.open(path.join(blocker, 'audit.log'), { onError: (err) => errors.push(err.message) });
  for (let i = 0; i < 3; i++) log.append({ event: 'layer.change', identity: 'a', action: 'DeleteLayer', result: 'ok' });
  await log.close();
  assert.equal(errors.length, 1);
  assert.match(errors[0], /ENOTDIR|EEXIST/);
  assert.equal(log.dropped, 3);
});
