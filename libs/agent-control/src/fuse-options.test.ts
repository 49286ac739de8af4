import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuseOptionList } from './fuse-options';

const sealed = { fsname: 'strata:base', timeoutSeconds: 3600, keepPageCache: true, noExec: false, noSuid: false, noDev: false, maxReadahead: 1 << 20 };

test('a sealed strata mount: read-only, kernel-checked permissions, long timeouts, kept page cache', () => {
  assert.deepEqual(fuseOptionList(sealed), [
    'ro',
    'default_permissions',
    'allow_other',
    'use_ino',
    'fsname=strata:base',
    'subtype=strata',
    'entry_timeout=3600',
    'attr_timeout=3600',
    'negative_timeout=3600',
    'exec',
    'suid',
    'dev',
    'kernel_cache',
    'max_readahead=1048576',
  ]);
});

test('a LIVE mount with the layer flags: fractional timeouts, auto_cache, noexec/nosuid/nodev', () => {
  const o = fuseOptionList({ ...sealed, timeoutSeconds: 0.2, keepPageCache: false, noExec: true, noSuid: true, noDev: true });
  for (const want of ['entry_timeout=0.2', 'attr_timeout=0.2', 'negative_timeout=0.2', 'noexec', 'nosuid', 'nodev', 'auto_cache']) assert.ok(o.includes(want), want);
  for (const unwanted of ['exec', 'suid', 'dev', 'kernel_cache']) assert.ok(!o.includes(unwanted), unwanted);
});

test('names cannot break the option list; another server may borrow the options under its own subtype', () => {
  const o = fuseOptionList({ ...sealed, fsname: 'strata:a,b\\c', subtype: 'passthrough' });
  assert.ok(o.includes('fsname=strata:a_b_c'));
  assert.ok(o.includes('subtype=passthrough') && !o.includes('subtype=strata'));
});
