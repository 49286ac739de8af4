import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { directoryProblem, fileProblem } from './paths';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-config-paths-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('directoryProblem', () => {
  test('an existing directory is fine; a file is not', () => {
    fs.writeFileSync(path.join(dir, 'f'), '');
    assert.equal(directoryProblem(dir, { mayCreate: false, access: 'read' }), undefined);
    assert.equal(directoryProblem(path.join(dir, 'f'), { mayCreate: true, access: 'read' }), `${path.join(dir, 'f')} is not a directory`);
  });

  test('a missing directory: creatable or not, and nothing is created', () => {
    const missing = path.join(dir, 'a/b/c');
    assert.equal(directoryProblem(missing, { mayCreate: false, access: 'read' }), `${missing} does not exist`);
    assert.equal(directoryProblem(missing, { mayCreate: true, access: 'write' }), undefined);
    assert.equal(fs.existsSync(path.join(dir, 'a')), false);
    assert.equal(directoryProblem(path.join(dir, 'f/x'), { mayCreate: true, access: 'write' }), `${path.join(dir, 'f/x')} cannot be created: ${path.join(dir, 'f')} is not a directory`);
  });
});

test('fileProblem: a regular file is fine; a missing path or a directory is named', () => {
  const file = path.join(dir, 'cert.pem');
  fs.writeFileSync(file, 'pem');
  assert.equal(fileProblem(file), undefined);
  assert.equal(fileProblem(path.join(dir, 'none.pem')), `${path.join(dir, 'none.pem')} does not exist`);
  assert.equal(fileProblem(dir), `${dir} is not a file`);
});
