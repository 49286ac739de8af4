import { Errno, StrataError } from '@strata/errors';
import { EVERY_HOST_USER, type Access, type LayerRef } from '@strata/layers';
import { hostIdentities, describeUser, type HostUser } from './host-user';

/** The resolver's CheckAccess (StrataClient.checkAccess). */
export type CheckAccess = (identity: string, layer: LayerRef) => Promise<Access & { enforced: boolean }>;

export interface MountGrant {
  /** The identity whose grant lets the user in (unix-user:NAME, unix-group:G or unix-user:*). */
  grantedTo: string;
  /** Every host user may read the layer (a read grant to unix-user:*): the mount may be allow_other. */
  everyHostUser: boolean;
}

function deny(message: string): StrataError {
  return new StrataError(Errno.EACCES, message);
}

const reads = (a: Access): boolean => a.read || a.admin;

/**
 * Whether a host user other than root may mount a layer: only when the
 * resolver enforces grants and one of them names the user, one of the
 * user's groups, or every host user. A resolver that enforces nothing
 * (plaintext) would answer "everyone may", which is no grant at all: a
 * non-root mount is then refused, so opening the socket to a group never
 * hands that group every layer by accident. The refusal does not say
 * whether the layer exists.
 */
export async function hostUserMayMount(check: CheckAccess, user: HostUser, layerText: string, ref: LayerRef): Promise<MountGrant> {
  const identities = hostIdentities(user);
  if (identities.length === 0) throw deny(`uid ${user.uid} has no entry in the user database: no grant can name it`);
  const answers = await Promise.all([...identities, EVERY_HOST_USER].map((id) => check(id, ref)));
  if (!answers[0].enforced) {
    throw deny('the resolver enforces no grants (it does not run mutual TLS): only root may mount through this agent');
  }
  const everyHostUser = reads(answers[answers.length - 1]);
  const i = identities.findIndex((_, k) => reads(answers[k]));
  if (i < 0 && !everyHostUser) throw deny(`permission denied: ${describeUser(user)} may not mount layer ${JSON.stringify(layerText)}`);
  return { grantedTo: i >= 0 ? identities[i] : EVERY_HOST_USER, everyHostUser };
}
