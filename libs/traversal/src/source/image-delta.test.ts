import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changedBlockRuns } from './image-delta';

test('changed guest ranges become the filesystem blocks they touch, inside the partition, merged with replayed blocks', () => {
  const MiB = 1 << 20;
  const runs = changedBlockRuns(
    [
      // Before the partition (the partition table): nothing of the filesystem.
      { offset: 0, length: 65536 },
      // Straddles the partition start: blocks 0..15.
      { offset: MiB - 4096, length: 65536 + 4096 },
      // Unaligned: one byte into block 100 up to one byte into block 101.
      { offset: MiB + 100 * 4096 + 1, length: 4096 },
      // Past the end of the filesystem: cut.
      { offset: MiB + 998 * 4096, length: 65536 },
    ],
    MiB,
    4096,
    1000,
    [16, 50, 101, 5000],
  );
  assert.deepEqual(runs, [
    { start: 0, end: 17 },
    { start: 50, end: 51 },
    { start: 100, end: 102 },
    { start: 998, end: 1000 },
  ]);
});
