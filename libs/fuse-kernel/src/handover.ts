/**
 * The handover state of a FUSE session (SessionHandover): what a successor
 * needs besides the /dev/fuse fds to serve a connection it did not mount.
 * It is read back from a file another build of strata may have written, so
 * every field is checked, and another format or version is refused whole
 * (EINVAL, saying which) rather than half understood.
 */
import { StrataError } from '@strata/errors';
import type { DataServing, HandedFiles, HandoverOptions, MountOptions, SessionHandover } from './types';

export const HANDOVER_FORMAT = 'strata-fuse-handover';
export const HANDOVER_VERSION = 1;

const READDIRPLUS = ['always', 'auto', 'never'] as const;
const DATA_SERVING: readonly DataServing[] = ['auto', 'passthrough', 'pread'];

/** JSON has no Infinity ("forever"): a number the native side reads as forever just the same. */
const FOREVER = 1e12;
function jsonSafe(n: number): number {
  return Number.isFinite(n) ? n : FOREVER;
}

/** The options a handover carries, from those a session was made with (defaults filled in). */
export function handoverOptions(o: MountOptions): HandoverOptions {
  return {
    rootIno: (o.rootIno ?? 1n).toString(),
    fsName: o.fsName ?? 'strata',
    subtype: o.subtype ?? 'strata',
    threads: o.threads ?? 4,
    keepCache: o.keepCache ?? false,
    readdirplus: o.readdirplus ?? 'always',
    entryTimeout: jsonSafe(o.entryTimeout ?? 1),
    attrTimeout: jsonSafe(o.attrTimeout ?? 1),
    negativeTimeout: jsonSafe(o.negativeTimeout ?? 0),
    negativeCacheTtl: jsonSafe(o.negativeCacheTtl ?? 0),
    cacheLimit: o.cacheLimit ?? 1 << 20,
    passthrough: o.passthrough ?? true,
    dataServing: o.dataServing ?? 'auto',
    cloneFd: o.cloneFd ?? true,
    requestTimeoutMs: o.requestTimeoutMs ?? 0,
  };
}

/** MountOptions from a handover's options (rootIno back to a bigint). */
export function optionsFromHandover(h: HandoverOptions): MountOptions {
  return { ...h, rootIno: BigInt(h.rootIno) };
}

function bad(what: string): StrataError {
  return StrataError.invalid(`fuse handover state: ${what}`);
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function uint(o: Record<string, unknown>, key: string, max: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw bad(`${key} must be an integer 0..${max}`);
  return v;
}

function finite(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw bad(`${key} must be a number >= 0`);
  return v;
}

function bool(o: Record<string, unknown>, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw bad(`${key} must be a boolean`);
  return v;
}

function str(o: Record<string, unknown>, key: string, max = 4096): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max || v.includes('\0')) throw bad(`${key} must be a string of 1..${max} characters`);
  return v;
}

function u64(o: Record<string, unknown>, key: string): string {
  const v = str(o, key, 20);
  if (!/^(0|[1-9][0-9]*)$/.test(v) || BigInt(v) >= 2n ** 64n) throw bad(`${key} must be a 64-bit unsigned integer in decimal`);
  return v;
}

function oneOf<T extends string>(o: Record<string, unknown>, key: string, values: readonly T[]): T {
  const v = o[key];
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw bad(`${key} must be one of ${values.join(', ')}`);
  return v as T;
}

/** More entries than any session has files open or registered: a bound on what a state may make us allocate. */
export const MAX_HANDED_FILES = 1 << 20;
const MAX_COUNT = 2 ** 31 - 1;
/** Backing ids are the kernel's idr ids: 1..INT_MAX; -1 says none. */
const MAX_BACKING_ID = 2 ** 31 - 1;

function list(o: Record<string, unknown>, key: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length > MAX_HANDED_FILES) throw bad(`files.${key} must be an array of at most ${MAX_HANDED_FILES} entries`);
  return v;
}

function backingId(o: Record<string, unknown>, allowNone: boolean): number {
  const v = o.backingId;
  if (typeof v !== 'number' || !Number.isInteger(v) || v > MAX_BACKING_ID || (v < 1 && !(allowNone && v === -1))) {
    throw bad(`backingId must be an integer 1..${MAX_BACKING_ID}${allowNone ? ' or -1' : ''}`);
  }
  return v;
}

/** files, checked: each ino once per list, a passthrough open always with its backing id, a backing id never shared by two inos. */
function parseFiles(v: unknown): HandedFiles {
  const f = record(v, 'files');
  const opens: HandedFiles['opens'] = [];
  const seen = new Set<string>();
  const idOf = new Map<number, string>();
  const own = (id: number, ino: string): void => {
    if (id === -1) return;
    const other = idOf.get(id);
    if (other !== undefined && other !== ino) throw bad(`backing id ${id} is given for ino ${other} and ino ${ino}`);
    idOf.set(id, ino);
  };
  for (const e of list(f, 'opens')) {
    const r = record(e, 'an entry of files.opens');
    const o = { ino: u64(r, 'ino'), cached: uint(r, 'cached', MAX_COUNT), passthrough: uint(r, 'passthrough', MAX_COUNT), backingId: backingId(r, true) };
    if (seen.has(o.ino)) throw bad(`ino ${o.ino} is twice in files.opens`);
    if ((o.passthrough > 0) !== (o.backingId !== -1)) throw bad(`ino ${o.ino}: a backing id goes with passthrough opens, and only with them`);
    seen.add(o.ino);
    own(o.backingId, o.ino);
    opens.push(o);
  }
  seen.clear();
  const backings: HandedFiles['backings'] = [];
  for (const e of list(f, 'backings')) {
    const r = record(e, 'an entry of files.backings');
    const b = { ino: u64(r, 'ino'), backingId: backingId(r, false) };
    if (seen.has(b.ino)) throw bad(`ino ${b.ino} is twice in files.backings`);
    seen.add(b.ino);
    own(b.backingId, b.ino);
    backings.push(b);
  }
  return { opens, backings };
}

/**
 * The state, checked: a copy holding only the known fields. EINVAL for
 * another format or version (named in the message) or a malformed field.
 */
export function parseHandover(state: unknown): SessionHandover {
  const s = record(state, 'the state');
  if (s.format !== HANDOVER_FORMAT || s.version !== HANDOVER_VERSION) {
    const format = typeof s.format === 'string' ? s.format.slice(0, 64) : String(s.format);
    const version = typeof s.version === 'number' ? s.version : String(s.version);
    throw bad(
      `format ${JSON.stringify(format)} version ${version} is not ${HANDOVER_FORMAT} version ${HANDOVER_VERSION} ` +
        '(written by another version of strata): not adopted',
    );
  }
  if (typeof s.mountpoint !== 'string' || !s.mountpoint.startsWith('/')) throw bad('mountpoint must be an absolute path');
  const mountpoint = str(s, 'mountpoint');
  const connection = uint(s, 'connection', 2 ** 52);
  let device: SessionHandover['device'] = null;
  if (s.device !== null) {
    const d = record(s.device, 'device');
    device = { major: uint(d, 'major', 2 ** 32 - 1), minor: uint(d, 'minor', 2 ** 32 - 1) };
  }
  const n = record(s.negotiated, 'negotiated');
  const negotiated = {
    minor: uint(n, 'minor', 1000),
    flags: u64(n, 'flags'),
    maxWrite: uint(n, 'maxWrite', 2 ** 31),
    maxPages: uint(n, 'maxPages', 256),
    passthrough: bool(n, 'passthrough'),
    ...(n.kernelOpens === undefined ? {} : { kernelOpens: bool(n, 'kernelOpens') }),
    generation: uint(n, 'generation', 4194302),
  };
  if (negotiated.kernelOpens === true && negotiated.passthrough) throw bad('kernelOpens and passthrough exclude each other (passthrough needs OPENs)');
  if (negotiated.maxPages === 0) throw bad('maxPages must be 1..256');
  const o = record(s.options, 'options');
  const options: HandoverOptions = {
    rootIno: u64(o, 'rootIno'),
    fsName: str(o, 'fsName', 255),
    subtype: str(o, 'subtype', 255),
    threads: uint(o, 'threads', 64),
    keepCache: bool(o, 'keepCache'),
    readdirplus: oneOf(o, 'readdirplus', READDIRPLUS),
    entryTimeout: finite(o, 'entryTimeout'),
    attrTimeout: finite(o, 'attrTimeout'),
    negativeTimeout: finite(o, 'negativeTimeout'),
    negativeCacheTtl: finite(o, 'negativeCacheTtl'),
    cacheLimit: uint(o, 'cacheLimit', Number.MAX_SAFE_INTEGER),
    passthrough: bool(o, 'passthrough'),
    dataServing: oneOf(o, 'dataServing', DATA_SERVING),
    cloneFd: bool(o, 'cloneFd'),
    requestTimeoutMs: finite(o, 'requestTimeoutMs'),
  };
  const files = s.files === undefined ? undefined : parseFiles(s.files);
  if (files && !negotiated.passthrough && files.opens.some((o) => o.passthrough > 0 || o.backingId !== -1)) throw bad('passthrough opens on a connection without passthrough');
  if (files && !negotiated.passthrough && files.backings.length > 0) throw bad('backing ids on a connection without passthrough');
  return { format: HANDOVER_FORMAT, version: HANDOVER_VERSION, mountpoint, connection, device, negotiated, options, ...(files ? { files } : {}) };
}
