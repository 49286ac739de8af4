import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutageMonitor, type EventLog } from './outage-monitor';

function recorder(): { log: EventLog; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const push = (fields: Record<string, unknown>): void => void events.push(fields);
  return { log: { info: push, warn: push }, events };
}

test('one outage of a resolver is one unreachable and one reachable event, with the attempts in between', async () => {
  const { log, events } = recorder();
  let now = 1000;
  const m = new OutageMonitor(log, () => now, async () => false);
  try {
    await m.streamBroken('10.0.0.1:7400', 'connect ECONNREFUSED');
    for (let i = 0; i < 5; i++) await m.streamBroken('10.0.0.1:7400', 'connect ECONNREFUSED');
    now += 4200;
    m.streamConnected('10.0.0.1:7400');
    m.streamConnected('10.0.0.1:7400');
    assert.deepEqual(
      events.map((e) => e.event),
      ['agent.resolver.unreachable', 'agent.resolver.reachable'],
    );
    assert.equal(events[1].downMs, 4200);
    assert.equal(events[1].attempts, 6);
    assert.deepEqual(m.unreachable, []);
  } finally {
    m.close();
  }
});

test('a stream that ends cleanly (a draining resolver), or breaks while the resolver takes connections, is no outage', async () => {
  const { log, events } = recorder();
  let listening = false;
  const m = new OutageMonitor(log, Date.now, async () => listening);
  await m.streamBroken('10.0.0.1:7400', undefined);
  // grpc-js failing a new stream while its channel backs off, the resolver already back:
  listening = true;
  await m.streamBroken('10.0.0.1:7400', 'No connection established');
  m.streamConnected('10.0.0.1:7400');
  m.close();
  assert.deepEqual(events, []);
});

test('operations failing while no resolver answers: one down event, one up event with the count, and only a real answer ends it', () => {
  const { log, events } = recorder();
  let now = 0;
  const m = new OutageMonitor(log, () => now);
  m.resolverAnswered();
  for (let i = 0; i < 40; i++) m.operationFailed('lookup', 'no resolver answered within 1000 ms');
  now = 2500;
  m.resolverAnswered();
  m.resolverAnswered();
  m.close();
  assert.deepEqual(
    events.map((e) => e.event),
    ['agent.resolver.down', 'agent.resolver.up'],
  );
  assert.equal(events[1].failedOps, 40);
  assert.equal(events[1].downMs, 2500);
});

test('a resolver that comes back while nothing asks for it is found by the probe', async () => {
  const { log, events } = recorder();
  let listening = false;
  const m = new OutageMonitor(log, Date.now, async () => listening);
  try {
    await m.streamBroken('10.0.0.2:7400', 'connect ECONNREFUSED');
    listening = true;
    const t0 = Date.now();
    while (m.unreachable.length > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      events.map((e) => [e.event, e.seenBy]),
      [
        ['agent.resolver.unreachable', undefined],
        ['agent.resolver.reachable', 'probe'],
      ],
    );
  } finally {
    m.close();
  }
});
