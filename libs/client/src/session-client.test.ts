import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { errorInfoOf, type SessionRequest, type SessionResponse } from '@strata/protocol';
import { FakeClock, settle } from './fake-clock';
import { FIRST_RECONNECT_DELAY_MS, SessionClient, type SessionEndpoint, type SessionPayload, type SessionStream } from './session-client';
import { SessionGroup } from './session-group';

/** One scripted Session stream: records what the client wrote; the test plays the resolver's side. */
class FakeStream implements SessionStream {
  readonly written: SessionRequest[] = [];
  cancelled = false;
  private readonly listeners = new Map<string, ((arg?: unknown) => void)[]>();

  constructor(readonly address: string) {}

  write(req: SessionRequest): boolean {
    this.written.push(req);
    return true;
  }

  cancel(): void {
    this.cancelled = true;
    // grpc-js reports a cancelled call to its own listeners as CANCELLED.
    queueMicrotask(() => this.emit('error', { code: GrpcCode.CANCELLED, details: 'Cancelled on client' }));
  }

  on(event: string, listener: (arg: never) => void): this {
    const list = this.listeners.get(event) ?? [];
    list.push(listener as (arg?: unknown) => void);
    this.listeners.set(event, list);
    return this;
  }

  emit(event: 'data' | 'error' | 'end' | 'metadata', arg?: unknown): void {
    for (const l of this.listeners.get(event) ?? []) l(arg);
  }

  ids(): number[] {
    return this.written.map((r) => r.id);
  }

  /** Answers request `id` with a readLink whose target echoes the requested path. */
  answer(id: number): void {
    const req = this.written.find((r) => r.id === id);
    assert.ok(req?.request?.$case === 'readLink', `request ${id} was sent on this stream`);
    const res: SessionResponse = { id, response: { $case: 'readLink', readLink: { target: req.request.readLink.path } } };
    this.emit('data', res);
  }

  /** The connection drops, as grpc-js reports it. */
  drop(): void {
    this.emit('error', { code: GrpcCode.UNAVAILABLE, details: 'Connection dropped' });
  }
}

/** Resolvers dealt in turn; each openSession() is a new FakeStream the test can reach. */
class FakeResolvers {
  readonly streams: FakeStream[] = [];
  private next = 0;
  readonly endpoints: SessionEndpoint[];
  /** While true, every stream opened fails as soon as something is written to it (no resolver is up). */
  down = false;

  constructor(...addresses: string[]) {
    this.endpoints = addresses.map((address) => ({
      address,
      openSession: () => {
        const s = new FakeStream(address);
        if (this.down) {
          const write = s.write.bind(s);
          s.write = (req) => {
            queueMicrotask(() => s.drop());
            return write(req);
          };
        }
        this.streams.push(s);
        return s;
      },
    }));
  }

  pick(): SessionEndpoint {
    return this.endpoints[this.next++ % this.endpoints.length];
  }

  get last(): FakeStream {
    return this.streams[this.streams.length - 1];
  }
}

const readLink = (path: string): SessionPayload => ({ $case: 'readLink', readLink: { layer: { ref: { $case: 'id', id: 1 } }, path: Buffer.from(path) } });

function target(answer: Awaited<ReturnType<SessionClient['request']>>): string {
  assert.equal(answer.$case, 'readLink');
  return answer.$case === 'readLink' ? answer.readLink.target.toString() : '';
}

describe('SessionClient over a stream that breaks', () => {
  test('unanswered requests are resent on a new stream to the next resolver; answered ones are not', async () => {
    const clock = new FakeClock();
    const resolvers = new FakeResolvers('a:1', 'b:1');
    const events: string[] = [];
    const s = new SessionClient({ pool: resolvers, clock, onEvent: (e) => events.push(`${e.type} ${e.address}${e.error ? ` ${e.error.code}` : ''}`) });
    const r1 = s.request(readLink('/one'));
    const r2 = s.request(readLink('/two'));
    const r3 = s.request(readLink('/three'));
    const a = resolvers.last;
    a.emit('metadata');
    assert.deepEqual(a.ids(), [1, 2, 3]);
    a.answer(2);
    assert.equal(target(await r2), '/two');
    a.drop();

    assert.equal(resolvers.streams.length, 1, 'waits before reconnecting after an error');
    await clock.advance(FIRST_RECONNECT_DELAY_MS - 1);
    assert.equal(resolvers.streams.length, 1);
    const r4 = s.request(readLink('/four'));
    assert.deepEqual(a.ids(), [1, 2, 3], 'nothing more goes to the broken stream');
    await clock.advance(1);
    assert.equal(resolvers.streams.length, 2);
    const b = resolvers.last;
    assert.equal(b.address, 'b:1');
    assert.deepEqual(b.ids().sort(), [1, 3, 4], 'the unanswered ones and the one made while reconnecting, not the answered one');
    assert.equal(s.inflight, 3);
    b.answer(3);
    b.answer(1);
    b.answer(4);
    assert.deepEqual([target(await r1), target(await r3), target(await r4)], ['/one', '/three', '/four']);
    assert.equal(s.inflight, 0);
    assert.deepEqual(events, ['connected a:1', `broken a:1 ${GrpcCode.UNAVAILABLE}`]);
    s.close();
  });

  test('a drained stream (ended without an error) hands over at once', async () => {
    const clock = new FakeClock();
    const resolvers = new FakeResolvers('a:1', 'b:1');
    const s = new SessionClient({ pool: resolvers, clock });
    const r1 = s.request(readLink('/one'));
    const r2 = s.request(readLink('/two'));
    resolvers.last.answer(1);
    resolvers.last.emit('end');
    await clock.advance(0);
    assert.equal(resolvers.streams.length, 2);
    assert.deepEqual(resolvers.last.ids(), [2]);
    resolvers.last.answer(2);
    assert.deepEqual([target(await r1), target(await r2)], ['/one', '/two']);
    s.close();
  });

  test('a resolver that cancels the stream (forced down) is left like a dropped one', async () => {
    const clock = new FakeClock();
    const resolvers = new FakeResolvers('a:1', 'b:1');
    const s = new SessionClient({ pool: resolvers, clock });
    const r1 = s.request(readLink('/one'));
    resolvers.last.emit('error', { code: GrpcCode.CANCELLED, details: 'Call cancelled' });
    await clock.advance(FIRST_RECONNECT_DELAY_MS);
    assert.deepEqual(resolvers.last.ids(), [1]);
    assert.equal(resolvers.last.address, 'b:1');
    resolvers.last.answer(1);
    assert.equal(target(await r1), '/one');
    s.close();
  });

  test('with no resolver up, each request fails at its own deadline; once one is back requests work again', async () => {
    const clock = new FakeClock();
    const resolvers = new FakeResolvers('a:1');
    resolvers.down = true;
    const s = new SessionClient({ pool: resolvers, clock, deadlineMs: 400 });
    const t0 = clock.now();
    const failedAt = new Map<string, number>();
    const fail = (name: string, p: Promise<unknown>): Promise<unknown> =>
      p.then(
        () => assert.fail(`${name} was answered`),
        (err: unknown) => {
          failedAt.set(name, clock.now() - t0);
          return err;
        },
      );
    const early = fail('early', s.request(readLink('/early')));
    await clock.advance(100);
    const late = fail('late', s.request(readLink('/late'), {}, 1000));
    const [e1, e2] = await clock.run(Promise.all([early, late]));
    assert.equal(failedAt.get('early'), 400);
    assert.equal(failedAt.get('late'), 1100);
    for (const e of [e1, e2]) {
      assert.ok(e instanceof StrataError);
      assert.equal(e.errno, Errno.EIO);
      assert.equal(e.code, GrpcCode.DEADLINE_EXCEEDED);
    }
    assert.ok(resolvers.streams.length > 3, `kept trying (${resolvers.streams.length} streams)`);
    // The pauses between attempts grow: far fewer streams than 1100 ms / 25 ms.
    assert.ok(resolvers.streams.length < 1100 / FIRST_RECONNECT_DELAY_MS, `${resolvers.streams.length} streams`);

    resolvers.down = false;
    await clock.advance(1_000); // the reconnect pause in progress (at most MAX_RECONNECT_DELAY_MS) runs out
    const again = s.request(readLink('/again'));
    await settle();
    resolvers.last.answer(resolvers.last.ids().at(-1) as number);
    assert.equal(target(await again), '/again');
    s.close();
  });

  test('a failure no retry can fix (a bad request status on the stream) fails every request in flight at once', async () => {
    const clock = new FakeClock();
    const resolvers = new FakeResolvers('a:1', 'b:1');
    const s = new SessionClient({ pool: resolvers, clock });
    const r1 = s.request(readLink('/one'));
    const r2 = s.request(readLink('/two'));
    resolvers.last.emit('error', { code: GrpcCode.INVALID_ARGUMENT, details: 'request does not decode' });
    for (const r of [r1, r2]) {
      const err = await r.catch((e: unknown) => e);
      assert.ok(err instanceof StrataError && err.code === GrpcCode.INVALID_ARGUMENT);
    }
    await clock.advance(10_000);
    assert.equal(resolvers.streams.length, 1, 'no reconnect for it');
    s.close();
  });

  test("an error answer fails only its own request, with the resolver's errno, and is not resent", async () => {
    const clock = new FakeClock();
    const resolvers = new FakeResolvers('a:1');
    const s = new SessionClient({ pool: resolvers, clock });
    const bad = s.request(readLink('/missing'));
    const good = s.request(readLink('/there'));
    const a = resolvers.last;
    a.emit('data', { id: 1, response: { $case: 'error', error: errorInfoOf(StrataError.notFound('no such file', Buffer.from('/missing'))) } });
    const err = await bad.catch((e: unknown) => e);
    assert.ok(err instanceof StrataError);
    assert.equal(err.errno, Errno.ENOENT);
    assert.deepEqual(err.path, Buffer.from('/missing'));
    a.answer(2);
    assert.equal(target(await good), '/there');
    assert.deepEqual(a.ids(), [1, 2]);
    s.close();
  });

  test('an answer after the deadline is dropped, and close() fails what is left without reconnecting', async () => {
    const clock = new FakeClock();
    const resolvers = new FakeResolvers('a:1', 'b:1');
    const s = new SessionClient({ pool: resolvers, clock, deadlineMs: 50 });
    const slow = s.request(readLink('/slow')).catch((e: unknown) => e);
    await clock.advance(50);
    const err = await slow;
    assert.ok(err instanceof StrataError && err.code === GrpcCode.DEADLINE_EXCEEDED);
    resolvers.last.answer(1); // late: nobody waits for it any more
    assert.equal(s.inflight, 0);

    const open = s.request(readLink('/open'), {}, 10_000).catch((e: unknown) => e);
    const a = resolvers.last;
    s.close();
    const closed = await open;
    assert.ok(closed instanceof StrataError && closed.code === GrpcCode.CANCELLED);
    assert.equal(a.cancelled, true);
    await clock.advance(10_000); // the CANCELLED our cancel() causes arrives meanwhile
    assert.equal(resolvers.streams.length, 1, 'our own cancel is not taken for a broken stream');
    await assert.rejects(s.request(readLink('/after')), (e: unknown) => e instanceof StrataError && e.message === 'session closed');
  });
});

describe('SessionGroup', () => {
  test('stream i opens on resolver i, however unary calls move the pool between the streams\' first requests', async () => {
    const resolvers = new FakeResolvers('r0:1', 'r1:1');
    const group = new SessionGroup(resolvers, { clock: new FakeClock() });
    // As at an agent's mount: GetLayer (unary), the first Session request, the Walk (unary), the next Session request.
    resolvers.pick();
    void group.request(readLink('/a')).catch(() => undefined);
    await settle();
    resolvers.pick();
    void group.request(readLink('/b')).catch(() => undefined);
    await settle();
    assert.deepEqual(resolvers.streams.map((s) => s.address).sort(), ['r0:1', 'r1:1']);
    group.close();
  });
});
