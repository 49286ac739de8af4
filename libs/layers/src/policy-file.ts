import { Errno, GrpcCode, StrataError, errorMessage } from '@strata/errors';
import { type Grant, type LayerSelector, type Policy, isPermission, validateIdentity, validateSelector } from './policy';

function corrupt(file: string, where: string, problem: string): StrataError {
  return new StrataError(Errno.EIO, `policy file ${file}: ${where} ${problem}`, { code: GrpcCode.DATA_LOSS });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function uint(obj: Record<string, unknown>, file: string, where: string, field: string): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw corrupt(file, `${where}field "${field}"`, `must be an integer >= 0, found ${JSON.stringify(v)}`);
  return v;
}

function selectorOf(raw: unknown, file: string, where: string): LayerSelector {
  if (!isObject(raw)) throw corrupt(file, `${where}field "layer"`, 'must be {"id": n}, {"name": s} or {"prefix": s}');
  const keys = Object.keys(raw);
  let s: LayerSelector | undefined;
  if (keys.length === 1 && typeof raw.id === 'number') s = { id: raw.id };
  else if (keys.length === 1 && typeof raw.name === 'string') s = { name: raw.name };
  else if (keys.length === 1 && typeof raw.prefix === 'string') s = { prefix: raw.prefix };
  if (!s) throw corrupt(file, `${where}field "layer"`, `must be {"id": n}, {"name": s} or {"prefix": s}, found ${JSON.stringify(raw)}`);
  try {
    validateSelector(s);
  } catch (err) {
    throw corrupt(file, `${where}field "layer"`, errorMessage(err));
  }
  return s;
}

function grantOf(raw: unknown, file: string, i: number): Grant {
  const where = `grants[${i}]: `;
  if (!isObject(raw)) throw corrupt(file, `grants[${i}]`, 'must be a JSON object');
  const { identity, permission, grantedBy } = raw;
  if (typeof identity !== 'string') throw corrupt(file, `${where}field "identity"`, `must be a string, found ${JSON.stringify(identity)}`);
  try {
    validateIdentity(identity);
  } catch (err) {
    throw corrupt(file, `${where}field "identity"`, errorMessage(err));
  }
  if (typeof permission !== 'string' || !isPermission(permission)) throw corrupt(file, `${where}field "permission"`, `must be "read" or "admin", found ${JSON.stringify(permission)}`);
  if (typeof grantedBy !== 'string') throw corrupt(file, `${where}field "grantedBy"`, `must be a string, found ${JSON.stringify(grantedBy)}`);
  return { identity, permission, layer: selectorOf(raw.layer, file, where), grantedBy, createTimeMs: uint(raw, file, where, 'createTimeMs') };
}

/**
 * Parses the policy file. Anything malformed names the file and the field:
 * an operator repairs it by hand, and until then the resolvers deny every
 * caller but their --admin identities.
 */
export function parsePolicyFile(text: string, file: string): Policy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StrataError(Errno.EIO, `policy file ${file}: not valid JSON (${errorMessage(err)})`, { code: GrpcCode.DATA_LOSS });
  }
  if (!isObject(raw)) throw corrupt(file, '(top level)', 'must be a JSON object');
  if (!Array.isArray(raw.grants)) throw corrupt(file, 'field "grants"', 'must be a list');
  const policy: Policy = {
    generation: uint(raw, file, '', 'generation'),
    updateTimeMs: uint(raw, file, '', 'updateTimeMs'),
    grants: raw.grants.map((g, i) => grantOf(g, file, i)),
  };
  if (raw.enforcedSinceMs !== undefined) policy.enforcedSinceMs = uint(raw, file, '', 'enforcedSinceMs');
  return policy;
}

export function serialisePolicyFile(policy: Policy): string {
  const { generation, updateTimeMs, enforcedSinceMs, grants } = policy;
  return `${JSON.stringify({ generation, updateTimeMs, ...(enforcedSinceMs !== undefined ? { enforcedSinceMs } : {}), grants }, null, 2)}\n`;
}
