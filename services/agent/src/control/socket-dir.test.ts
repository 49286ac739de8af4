import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareSocketDir } from './socket-dir';

function temp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'strata-sockdir-'));
}

test("a missing directory is created 0700; one holding only the agent's files is made 0700; any other is left alone", async () => {
  const root = temp();
  try {
    const made = path.join(root, 'run', 'strata');
    assert.equal(await prepareSocketDir(path.join(made, 'agent.sock'), undefined), 'created');
    assert.equal(fs.statSync(made).mode & 0o777, 0o700);

    const own = path.join(root, 'own');
    fs.mkdirSync(own, { mode: 0o755 });
    fs.writeFileSync(path.join(own, 'agent.sock.mounts.json'), '{}');
    assert.equal(await prepareSocketDir(path.join(own, 'agent.sock'), undefined), 'tightened');
    assert.equal(fs.statSync(own).mode & 0o777, 0o700);

    const shared = path.join(root, 'shared');
    fs.mkdirSync(shared, { mode: 0o755 });
    fs.chmodSync(shared, 0o1777);
    fs.writeFileSync(path.join(shared, 'someone-elses-file'), '');
    assert.equal(await prepareSocketDir(path.join(shared, 'agent.sock'), undefined), 'shared');
    assert.equal(fs.statSync(shared).mode & 0o7777, 0o1777);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('with a group: 0750 and that group', { skip: process.getuid?.() === 0 ? false : 'needs root (chown)' }, async () => {
  const root = temp();
  try {
    const dir = path.join(root, 'run');
    await prepareSocketDir(path.join(dir, 'agent.sock'), 65534);
    const st = fs.statSync(dir);
    assert.equal(st.mode & 0o777, 0o750);
    assert.equal(st.gid, 65534);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
