import { validateIdentity, type PolicyStore } from '@strata/layers';
import { type PolicyServiceServer, grantToProto, layerRefFromProto, layerSelectorFromProto, permissionFromProto } from '@strata/protocol';
import type { Authorizer } from '../access/authorizer';
import { unary, type RpcContext } from './calls';
import { callerIdentity } from './tls';

/**
 * PolicyService: grants kept in the store beside the catalog. Who may call
 * what is decided before these run (access-control.ts); here the policy is
 * changed, listed as far as the caller may see it, or asked.
 */
export function policyService(store: PolicyStore, authz: Authorizer, rpc: RpcContext): PolicyServiceServer {
  return {
    grant: unary('Grant', rpc, async (req, call) => {
      const identity = callerIdentity(call) ?? '';
      const { grant, policy, changed } = await store.grant({
        identity: req.identity,
        permission: permissionFromProto(req.permission),
        layer: layerSelectorFromProto(req.layer),
        grantedBy: identity,
        expectedGeneration: req.expectedGeneration,
      });
      if (changed) rpc.log.info({ event: 'policy.granted', identity: grant.identity, permission: grant.permission, layer: grant.layer, by: identity, generation: policy.generation }, 'grant added');
      return { grant: grantToProto(grant), generation: policy.generation, changed };
    }),
    revoke: unary('Revoke', rpc, async (req, call) => {
      const identity = callerIdentity(call) ?? '';
      const which = { identity: req.identity, permission: permissionFromProto(req.permission), layer: layerSelectorFromProto(req.layer) };
      const { policy, changed } = await store.revoke({ ...which, expectedGeneration: req.expectedGeneration });
      if (changed) rpc.log.info({ event: 'policy.revoked', ...which, by: identity, generation: policy.generation }, 'grant revoked');
      return { generation: policy.generation, changed };
    }),
    listGrants: unary('ListGrants', rpc, async (_req, call) => {
      const identity = callerIdentity(call);
      const grants = await authz.visibleGrants(identity);
      const index = await authz.index();
      const admins = authz.enforced && authz.isAdmin(identity) ? [...authz.admins].sort() : [];
      return { grants: grants.map(grantToProto), generation: index.policy.generation, enforced: authz.enforced, admins };
    }),
    checkAccess: unary('CheckAccess', rpc, async (req) => {
      validateIdentity(req.identity);
      const access = await authz.policyAccess(req.identity, await authz.target(layerRefFromProto(req.layer)));
      return { read: access.read, admin: access.admin, enforced: authz.enforced };
    }),
  };
}
