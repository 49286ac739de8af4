import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from './crc32c';

test('crc32c is Castagnoli CRC-32C (the check value of "123456789" is 0xE3069283)', () => {
  // ext4 uses the raw register: the standard value is its inversion, from an inverted seed.
  assert.equal(~crc32c(0xffffffff, Buffer.from('123456789')) >>> 0, 0xe3069283);
  assert.equal(crc32c(0xffffffff, Buffer.alloc(0)), 0xffffffff);
});

test('crc32c chains: two halves give the checksum of the whole', () => {
  const data = Buffer.from('metadata_csum chains the seed through every field');
  const whole = crc32c(0x1234, data);
  assert.equal(crc32c(crc32c(0x1234, data, 0, 10), data, 10), whole);
});
