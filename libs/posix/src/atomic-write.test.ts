import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from './index';

test('writeFileAtomic replaces the content and leaves no temporary file', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-atomic-'));
  try {
    const file = path.join(dir, 'state.json');
    writeFileSync(file, 'old');
    await Promise.all([writeFileAtomic(file, 'new-1'), writeFileAtomic(file, 'new-2')]);
    assert.ok(['new-1', 'new-2'].includes(readFileSync(file, 'utf8')));
    assert.deepEqual(readdirSync(dir), ['state.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed write keeps the old content', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-atomic-'));
  try {
    const file = path.join(dir, 'state.json');
    writeFileSync(file, 'old');
    await assert.rejects(writeFileAtomic(path.join(dir, 'missing', 'x'), 'new'));
    assert.equal(readFileSync(file, 'utf8'), 'old');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
