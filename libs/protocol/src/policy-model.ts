import { StrataError } from '@strata/errors';
import type { Grant, LayerSelector, Permission } from '@strata/layers';
import { Grant as PbGrant, LayerSelector as PbLayerSelector, Permission as PbPermission } from './gen/strata/v1/policy';

/** Conversions between the access policy (@strata/layers) and strata.v1 messages. */

export function permissionToProto(p: Permission): PbPermission {
  return p === 'admin' ? PbPermission.PERMISSION_ADMIN : PbPermission.PERMISSION_READ;
}

/** UNSPECIFIED and unknown values are INVALID_ARGUMENT: a grant must say what it allows. */
export function permissionFromProto(p: PbPermission): Permission {
  if (p === PbPermission.PERMISSION_READ) return 'read';
  if (p === PbPermission.PERMISSION_ADMIN) return 'admin';
  throw StrataError.invalid('permission: read or admin is required');
}

export function layerSelectorToProto(s: LayerSelector): PbLayerSelector {
  if ('id' in s) return { selector: { $case: 'id', id: s.id } };
  if ('name' in s) return { selector: { $case: 'name', name: s.name } };
  return { selector: { $case: 'namePrefix', namePrefix: s.prefix } };
}

/** A request's selector; a missing one is INVALID_ARGUMENT (the store checks the values). */
export function layerSelectorFromProto(s: PbLayerSelector | undefined, field = 'layer'): LayerSelector {
  const v = s?.selector;
  if (v?.$case === 'id') return { id: v.id };
  if (v?.$case === 'name') return { name: v.name };
  if (v?.$case === 'namePrefix') return { prefix: v.namePrefix };
  throw StrataError.invalid(`${field}: a layer id, name or name prefix is required`);
}

export function grantToProto(g: Grant): PbGrant {
  return { identity: g.identity, permission: permissionToProto(g.permission), layer: layerSelectorToProto(g.layer), grantedBy: g.grantedBy, createTimeMs: g.createTimeMs };
}

export function grantFromProto(g: PbGrant): Grant {
  return { identity: g.identity, permission: permissionFromProto(g.permission), layer: layerSelectorFromProto(g.layer), grantedBy: g.grantedBy, createTimeMs: g.createTimeMs };
}
