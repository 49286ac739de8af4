import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dosTimeToNs } from './dos-time';

const dosDate = (y: number, m: number, d: number): number => ((y - 1980) << 9) | (m << 5) | d;
const dosTime = (h: number, mi: number, s: number): number => (h << 11) | (mi << 5) | (s >> 1);
const ns = (iso: string): bigint => BigInt(Date.parse(iso)) * 1_000_000n;

test('DOS date/time to Unix time (UTC), 2-second resolution', () => {
  assert.equal(dosTimeToNs(dosTime(12, 34, 56), dosDate(2024, 2, 29)), ns('2024-02-29T12:34:56Z'));
  assert.equal(dosTimeToNs(dosTime(23, 59, 59), dosDate(2099, 12, 31)), ns('2099-12-31T23:59:58Z'));
  assert.equal(dosTimeToNs(0, dosDate(2100, 3, 1)), ns('2100-03-01T00:00:00Z'));
  assert.equal(dosTimeToNs(0, dosDate(2107, 12, 31)), ns('2107-12-31T00:00:00Z'));
  assert.equal(dosTimeToNs(0, 0), ns('1980-01-01T00:00:00Z'));
});

test('creation time: 10 ms units, up to 1.99 s more', () => {
  assert.equal(dosTimeToNs(dosTime(1, 2, 4), dosDate(2020, 1, 1), 199), ns('2020-01-01T01:02:05Z') + 990_000_000n);
  assert.equal(dosTimeToNs(dosTime(1, 2, 4), dosDate(2020, 1, 1), 50), ns('2020-01-01T01:02:04Z') + 500_000_000n);
});

test('out-of-range fields are added as the kernel adds them', () => {
  // Month 0 counts as January and day 0 as the 1st.
  assert.equal(dosTimeToNs(0, (40 << 9) | (0 << 5) | 0), ns('2020-01-01T00:00:00Z'));
  // Hour 31 and second 62 are not checked.
  assert.equal(dosTimeToNs((31 << 11) | 31, dosDate(2020, 1, 1)), ns('2020-01-01T00:00:00Z') + (31n * 3600n + 62n) * 1_000_000_000n);
});
