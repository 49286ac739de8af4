import { promises as fs } from 'node:fs';
import { Errno, StrataError } from '@strata/errors';
import type { Layer } from '@strata/layers';
import { writeFileAtomic } from '@strata/posix';
import type { HostUser } from '../access/host-user';

export const MOUNT_RECORD_FORMAT = 'strata-agent-mount';
export const MOUNT_RECORD_VERSION = 1;
/** A record larger than this is not one this agent wrote. */
const MAX_RECORD_BYTES = 4 << 20;

/**
 * What an agent taking a mount over needs besides the FUSE fds: what was
 * mounted, how, for whom, the session's handover state and where its node
 * journal is. Written once the mount is up (atomically), read by the
 * successor; versioned, so a build that does not know this version
 * refuses it instead of guessing.
 */
export interface MountRecord {
  format: typeof MOUNT_RECORD_FORMAT;
  version: typeof MOUNT_RECORD_VERSION;
  /** The holder's id of the entry and the key of the mount's caches. */
  id: string;
  /** The layer as the caller named it. */
  layer: string;
  chain: Layer[];
  mountpoint: string;
  /** No deadline, no watchdog: readers wait for the resolvers. */
  hard: boolean;
  /** Who mounted it: only they (or root) may unmount it. */
  owner: 'agent' | { uid: number; pid: number; name?: string };
  allowOther: boolean;
  privateTo?: { uid: number; gid: number };
  /** A host user's mount (not root's): whose grant is asked again at each report round. */
  hostUser?: HostUser;
  flags: string[];
  mountedAt: string;
  /** FuseSession.handoverState() — opaque here, checked by FuseSession.adopt. */
  handover: Record<string, unknown>;
  /** The node journal's file. */
  nodes: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isLayer(v: unknown): v is Layer {
  return isObject(v) && Number.isSafeInteger(v.layerId) && typeof v.name === 'string' && Array.isArray(v.mountOptions) && v.mountOptions.every((o) => typeof o === 'string');
}

function isHostUser(v: unknown): v is HostUser {
  return (
    isObject(v) &&
    Number.isSafeInteger(v.uid) &&
    Number.isSafeInteger(v.gid) &&
    Number.isSafeInteger(v.pid) &&
    (v.name === undefined || typeof v.name === 'string') &&
    Array.isArray(v.groups) &&
    v.groups.every((g) => typeof g === 'string')
  );
}

function isOwner(v: unknown): v is MountRecord['owner'] {
  return v === 'agent' || (isObject(v) && Number.isSafeInteger(v.uid) && Number.isSafeInteger(v.pid) && (v.name === undefined || typeof v.name === 'string'));
}

/**
 * The record as its writer wrote it. EOPNOTSUPP for one of another format
 * or version (a different build's), EUCLEAN for a damaged one, ENOENT when
 * there is none.
 */
export function parseMountRecord(text: string, where: string): MountRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new StrataError(Errno.EUCLEAN, `mount record ${where} is not JSON`);
  }
  if (!isObject(v) || v.format !== MOUNT_RECORD_FORMAT) throw new StrataError(Errno.EOPNOTSUPP, `${where} is not a strata agent mount record (format ${JSON.stringify(isObject(v) ? v.format : undefined)})`);
  if (v.version !== MOUNT_RECORD_VERSION) {
    throw new StrataError(Errno.EOPNOTSUPP, `mount record ${where} is version ${JSON.stringify(v.version)}; this agent reads version ${MOUNT_RECORD_VERSION}`);
  }
  const bad = (field: string): StrataError => new StrataError(Errno.EUCLEAN, `mount record ${where}: ${field} missing or wrong`);
  if (typeof v.id !== 'string' || !/^[0-9a-z-]{1,64}$/.test(v.id)) throw bad('id');
  if (typeof v.layer !== 'string' || v.layer === '') throw bad('layer');
  if (!Array.isArray(v.chain) || v.chain.length === 0 || !v.chain.every(isLayer)) throw bad('chain');
  if (typeof v.mountpoint !== 'string' || !v.mountpoint.startsWith('/')) throw bad('mountpoint');
  if (typeof v.hard !== 'boolean') throw bad('hard');
  if (!isOwner(v.owner)) throw bad('owner');
  if (typeof v.allowOther !== 'boolean') throw bad('allowOther');
  if (v.privateTo !== undefined && !(isObject(v.privateTo) && Number.isSafeInteger(v.privateTo.uid) && Number.isSafeInteger(v.privateTo.gid))) throw bad('privateTo');
  if (v.hostUser !== undefined && !isHostUser(v.hostUser)) throw bad('hostUser');
  if (!Array.isArray(v.flags) || !v.flags.every((f) => typeof f === 'string')) throw bad('flags');
  if (typeof v.mountedAt !== 'string') throw bad('mountedAt');
  if (!isObject(v.handover)) throw bad('handover');
  if (typeof v.nodes !== 'string' || !v.nodes.startsWith('/')) throw bad('nodes');
  return v as unknown as MountRecord;
}

export async function readMountRecord(file: string): Promise<MountRecord> {
  let text: string;
  try {
    const st = await fs.stat(file);
    if (st.size > MAX_RECORD_BYTES) throw new StrataError(Errno.EUCLEAN, `mount record ${file} is ${st.size} bytes: not one this agent wrote`);
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw StrataError.from(err, `mount record ${file}`);
  }
  return parseMountRecord(text, file);
}

export async function writeMountRecord(file: string, r: MountRecord): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(r, null, 2)}\n`);
}
