/**
 * Secrets that configuration puts into strings — a Redis URL's password
 * (`redis://:pw@host`, `rediss://user:pw@host`, `redis+cluster://:pw@a,b`),
 * a `password=` parameter — replaced by `***` wherever such a string is
 * logged, exported or printed. Cheap enough for every log line: one scan
 * that gives up at the first character that cannot start a secret.
 */

/** scheme://user:PASSWORD@ — the password is whatever runs to the last @ before the host (it may hold : and /). */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*:)[^\s@]*@/gi;
/** password=..., passwd=..., pass=... in a query string or a key=value list. */
const PASSWORD_PARAM = /\b(pass(?:word|wd)?|secret|token)=([^\s&;,"']+)/gi;

export const REDACTED = '***';

export function redactSecrets(text: string): string {
  if (!text.includes('@') && !text.includes('=')) return text;
  return text.replace(URL_PASSWORD, `$1${REDACTED}@`).replace(PASSWORD_PARAM, `$1=${REDACTED}`);
}

/** A value with every string in it redacted (objects and arrays copied, to a bounded depth; anything deeper is left out). */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= 4) return '[nested]';
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  // Errors and other class instances: their own enumerable fields, and an Error's message.
  const out: Record<string, unknown> = {};
  if (value instanceof Error) {
    out.message = redactSecrets(value.message);
    if (value.stack) out.stack = redactSecrets(value.stack);
  }
  for (const [k, v] of Object.entries(value)) out[k] = redactValue(v, depth + 1);
  return out;
}
