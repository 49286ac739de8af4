import { isTransportError } from '@strata/client';
import { Errno, errnoName, isStrataError } from '@strata/errors';
import { CliError } from './command-context';

/**
 * A failure as `--json` prints it: one JSON object, one line, on stderr
 * (stdout keeps only results, so a script reading stdout never mistakes an
 * error for output). The shape is documented in docs/cli.md; fields are only
 * ever added.
 *
 *   {"error":{"message":"...","errno":"ENOENT","errnoNumber":2,"kind":"resolver"}}
 *
 * kind: "usage" (bad arguments), "transport" (no resolver reached: with
 * "failure" and "addresses"), "local" (found by the CLI itself before asking
 * anyone), "error" (an answer: from a resolver or the agent; "grpcCode" is
 * the gRPC status it maps to).
 */
export interface ErrorJson {
  error: {
    message: string;
    errno: string;
    errnoNumber: number;
    kind: 'usage' | 'transport' | 'local' | 'error';
    grpcCode?: number;
    failure?: string;
    addresses?: readonly string[];
  };
}

/** Whether the command line asks for JSON (the global --json, wherever it stands before `--`). */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

export function errorJson(err: unknown, message: string): ErrorJson {
  if (isTransportError(err)) {
    return { error: { message, errno: err.errnoName, errnoNumber: err.errno, kind: 'transport', failure: err.failure, addresses: err.addresses } };
  }
  if (err instanceof CliError) return { error: { message, errno: err.errnoName, errnoNumber: err.errno, kind: 'local' } };
  if (isStrataError(err)) return { error: { message, errno: err.errnoName, errnoNumber: err.errno, kind: 'error', grpcCode: err.code } };
  return { error: { message, errno: errnoName(Errno.EIO), errnoNumber: Errno.EIO, kind: 'error' } };
}

/** Commander's own message ("error: unknown option '--x'") as a usage error. */
export function usageErrorJson(commanderText: string): ErrorJson {
  const message = commanderText.trim().replace(/^error: /, '');
  return { error: { message, errno: errnoName(Errno.EINVAL), errnoNumber: Errno.EINVAL, kind: 'usage' } };
}
