import { execFile } from 'node:child_process';
import { HOST_GROUP_PREFIX, HOST_USER_PREFIX } from '@strata/layers';

/** A caller of the control socket as the host knows it (SO_PEERCRED, then the user and group databases). */
export interface HostUser {
  uid: number;
  gid: number;
  pid: number;
  /** The login name; undefined when the uid has no entry (such a caller matches no grant). */
  name: string | undefined;
  /** Names of the groups the user database gives the user, the primary one included. */
  groups: string[];
}

/** `id` is given this long; the user database may be remote (NSS). */
const ID_TIMEOUT_MS = 5_000;

const ID_LINE = /^uid=\d+\(([^)]*)\) gid=\d+(?:\([^)]*\))?(?: groups=(.*))?$/;

/** `uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup),100(users)` → name and group names. */
export function parseIdLine(line: string): { name: string; groups: string[] } | undefined {
  const m = ID_LINE.exec(line.trim());
  if (!m) return undefined;
  const groups = (m[2] ?? '')
    .split(',')
    .map((g) => /^\d+\(([^)]+)\)$/.exec(g)?.[1])
    .filter((g): g is string => g !== undefined);
  return { name: m[1], groups };
}

/**
 * Who uid is, by `id +UID` (the user database through NSS, as login sees it;
 * `+` makes it a number, never a user named like one). The groups are the
 * database's, not the calling process's: a process can hold a descriptor
 * opened by another, and pids are reused, so nothing about the caller
 * beyond its uid is taken from the process itself.
 */
export function lookupHostUser(peer: { uid: number; gid: number; pid: number }): Promise<HostUser> {
  return new Promise((resolve) => {
    execFile('id', ['--', `+${peer.uid}`], { timeout: ID_TIMEOUT_MS, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' } }, (err, stdout) => {
      const parsed = err ? undefined : parseIdLine(stdout);
      resolve({ ...peer, name: parsed?.name, groups: parsed?.groups ?? [] });
    });
  });
}

/** The identities grants name this user by: unix-user:NAME, then unix-group:G for each group. */
export function hostIdentities(user: HostUser): string[] {
  if (user.name === undefined) return [];
  return [`${HOST_USER_PREFIX}${user.name}`, ...user.groups.map((g) => `${HOST_GROUP_PREFIX}${g}`)];
}

/** How audit lines and messages name the caller. */
export function describeUser(user: { uid: number; name?: string | undefined }): string {
  return user.name !== undefined ? `${HOST_USER_PREFIX}${user.name}` : `uid:${user.uid}`;
}
