import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SessionResponse } from '@strata/protocol';
import { sessionResponseBytes } from './session-wire';

const generated = (v: SessionResponse): Buffer => Buffer.from(SessionResponse.encode(v).finish());

describe('sessionResponseBytes', () => {
  it('writes read answers byte for byte as the generated encoder does', () => {
    for (const id of [0, 1, 127, 128, 300, 2 ** 32 + 7, 2 ** 53 - 1]) {
      for (const offset of [0, 1, 4096, 2 ** 40 + 3]) {
        for (const eof of [false, true]) {
          for (const size of [4096, 65_536 + 17, 1 << 20]) {
            const v: SessionResponse = { id, response: { $case: 'read', read: { offset, data: randomBytes(size), eof } } };
            const fast = sessionResponseBytes(v);
            assert.ok(fast.equals(generated(v)), `id ${id} offset ${offset} eof ${eof} size ${size}`);
            assert.deepEqual(SessionResponse.decode(fast), v);
          }
        }
      }
    }
  });

  it('encodes every other answer as generated', () => {
    const others: SessionResponse[] = [
      { id: 5, response: { $case: 'read', read: { offset: 9, data: Buffer.from('small'), eof: true } } },
      { id: 6, response: { $case: 'readLink', readLink: { target: Buffer.from('/x') } } },
      { id: 7, response: undefined },
    ];
    for (const v of others) assert.ok(sessionResponseBytes(v).equals(generated(v)), JSON.stringify(v.response?.$case));
  });
});
