import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PasswdNames } from './passwd-names';

test('uid to name from a passwd file; the first line for a uid wins; unknown uids stay unnamed', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-passwd-'));
  try {
    const file = path.join(dir, 'passwd');
    fs.writeFileSync(file, 'root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\ntoor:x:0:0::/:/bin/sh\nbroken line\n');
    const names = new PasswdNames(file);
    assert.equal(names.nameOf(0), 'root');
    assert.equal(names.nameOf(65534), 'nobody');
    assert.equal(names.nameOf(4321), undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
