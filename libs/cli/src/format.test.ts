import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileType, modeString } from './format';

test('file type names and ls letters, as the JSON and ls -l show them', () => {
  const cases: [number, string, string][] = [
    [0o100644, 'file', '-rw-r--r--'],
    [0o040755, 'directory', 'drwxr-xr-x'],
    [0o120777, 'symlink', 'lrwxrwxrwx'],
    [0o020666, 'char-device', 'crw-rw-rw-'],
    [0o060660, 'block-device', 'brw-rw----'],
    [0o010644, 'fifo', 'prw-r--r--'],
    [0o140755, 'socket', 'srwxr-xr-x'],
    [0o000644, 'unknown', '?rw-r--r--'],
  ];
  for (const [mode, name, ls] of cases) {
    assert.equal(fileType(mode), name, mode.toString(8));
    assert.equal(modeString(mode), ls, mode.toString(8));
  }
});

test('setuid, setgid and sticky bits as ls shows them', () => {
  assert.equal(modeString(0o104755), '-rwsr-xr-x');
  assert.equal(modeString(0o104644), '-rwSr--r--');
  assert.equal(modeString(0o102755), '-rwxr-sr-x');
  assert.equal(modeString(0o041777), 'drwxrwxrwt');
  assert.equal(modeString(0o041776), 'drwxrwxrwT');
});
