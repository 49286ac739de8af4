import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FILE_OPENS, fileOpensFor } from './mount';

describe('fileOpensFor: who opens a new mount\'s files', () => {
  it('agent: always the agent', () => {
    for (const live of [false, true]) for (const audited of [false, true]) assert.deepEqual(fileOpensFor('agent', live, audited), { kernel: false });
  });

  it('never the kernel for a LIVE or an audited mount, whatever is asked, and says why', () => {
    for (const asked of FILE_OPENS) {
      const live = fileOpensFor(asked, true, false);
      assert.equal(live.kernel, false);
      if (asked !== 'agent') assert.match(live.why ?? '', /LIVE/);
      const audited = fileOpensFor(asked, false, true);
      assert.equal(audited.kernel, false);
      if (asked !== 'agent') assert.match(audited.why ?? '', /audited/);
    }
  });

  it('kernel and auto: the kernel for every other mount', () => {
    assert.deepEqual(fileOpensFor('kernel', false, false), { kernel: true });
    assert.deepEqual(fileOpensFor('auto', false, false), { kernel: true });
  });
});
