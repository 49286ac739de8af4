import assert from 'node:assert/strict';
import { strata, type ResolverProcess } from '@strata/harness';

/** The CLI against a test's resolver; `check` asserts it succeeded, naming the command and its stderr. */
export function cliOf(resolver: () => ResolverProcess): (args: string[], check?: boolean) => ReturnType<typeof strata> {
  return (args, check = true) => {
    const r = strata(args, { STRATA_RESOLVER: resolver().address });
    if (check) assert.equal(r.status, 0, `strata ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
}
