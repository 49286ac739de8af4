import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '@strata/filesystem';
import { crc32cSliced } from './crc32c-sliced';

test('crc32c slicing-by-8 equals the bytewise reference at every length and alignment', () => {
  const data = Buffer.alloc(300);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= data.length; end += 13) {
      assert.equal(crc32cSliced(0xffffffff, data, start, end), crc32c(0xffffffff, data, start, end));
      assert.equal(crc32cSliced(0x1234, data, start, end), crc32c(0x1234, data, start, end));
    }
  }
});
