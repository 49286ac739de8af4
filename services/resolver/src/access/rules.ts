import { formatLayerSelector, type LayerRef, type LayerSelector } from '@strata/layers';
import {
  type CheckAccessRequest,
  type CheckLayerRequest,
  type CreateLayerRequest,
  type DeleteLayerRequest,
  type DiffRequest,
  type GetLayerRequest,
  type GrantRequest,
  type InspectImageRequest,
  type RevokeRequest,
  type SessionRequest,
  type UpdateLayerRequest,
  layerRefFromProto,
  layerSelectorFromProto,
  optionalLayerRefFromProto,
  permissionFromProto,
  requestOf,
} from '@strata/protocol';

/** One thing a request needs the caller to be allowed. */
export type Need =
  /** read or admin on a layer the request names. */
  | { kind: 'layer'; permission: 'read' | 'admin'; ref: LayerRef; verb: string }
  /** admin on a layer name: creating a layer with it, renaming one to it. */
  | { kind: 'name'; name: string }
  /** A layer's data may not be another layer's the caller may not read. */
  | { kind: 'source'; source: string; filesystemPath: string | undefined; self?: LayerRef }
  /** Granting or revoking on these layers. */
  | { kind: 'selector'; selector: LayerSelector; verb: string }
  /** Asking what someone may do on a layer: about host users anyone authenticated (agents), else admins of the layer. */
  | { kind: 'ask'; identity: string; ref: LayerRef };

export type AuditedAs = 'layer.change' | 'policy.change';

export interface Rule {
  /** What the request needs. Throws INVALID_ARGUMENT for a request the handler would refuse the same way. */
  needs(req: unknown): Need[];
  /** Changes recorded in the audit log whatever their outcome. */
  audit?: AuditedAs;
  /** The layer as the request names it, for the audit line. */
  layer?(req: unknown): string | undefined;
  /** What else the audit line says about a change. */
  detail?(req: unknown, res: unknown): Record<string, string | number | boolean>;
}

export function refText(ref: LayerRef): string {
  return 'id' in ref ? String(ref.id) : ref.name;
}

const read = (ref: LayerRef, verb = 'read'): Need => ({ kind: 'layer', permission: 'read', ref, verb });
const admin = (ref: LayerRef, verb: string): Need => ({ kind: 'layer', permission: 'admin', ref, verb });

/** Any request carrying `layer` that only reads it (projection operations, GetLayer). */
const readsLayer: Rule = {
  needs: (req) => [read(layerRefFromProto((req as GetLayerRequest).layer))],
  layer: (req) => layerTextOf((req as GetLayerRequest).layer),
};

function layerTextOf(ref: GetLayerRequest['layer']): string | undefined {
  const r = ref?.ref;
  if (r?.$case === 'id') return String(r.id);
  if (r?.$case === 'name') return r.name;
  return undefined;
}

/** Any authenticated caller; what it sees is narrowed by its handler (ListLayers, ListGrants). */
const authenticated: Rule = { needs: () => [] };

const LAYER_SERVICE: Record<string, Rule> = {
  createLayer: {
    needs: (req) => {
      const r = req as CreateLayerRequest;
      const base = optionalLayerRefFromProto(r.base, 'base');
      return [{ kind: 'name', name: r.name }, ...(base ? [read(base, 'build on')] : []), { kind: 'source', source: r.source, filesystemPath: r.filesystemPath || undefined }];
    },
    audit: 'layer.change',
    layer: (req) => (req as CreateLayerRequest).name || '(unnamed)',
    detail: (req, res) => ({ source: (req as CreateLayerRequest).source, ...(res ? { layerId: (res as { layer?: { layerId: number } }).layer?.layerId ?? 0 } : {}) }),
  },
  getLayer: readsLayer,
  listLayers: authenticated,
  updateLayer: {
    needs: (req) => {
      const r = req as UpdateLayerRequest;
      const ref = layerRefFromProto(r.layer);
      const base = optionalLayerRefFromProto(r.base, 'base');
      const needs: Need[] = [admin(ref, 'change')];
      // Removing a name reaches no one new; a new name may fall under someone else's grants.
      if (r.name !== undefined && r.name !== '') needs.push({ kind: 'name', name: r.name });
      if (base) needs.push(read(base, 'build on'));
      if (r.source !== undefined || r.filesystemPath !== undefined) needs.push({ kind: 'source', source: r.source ?? '', filesystemPath: r.filesystemPath, self: ref });
      return needs;
    },
    audit: 'layer.change',
    layer: (req) => layerTextOf((req as UpdateLayerRequest).layer),
    detail: (req, res) => ({ force: (req as UpdateLayerRequest).force, ...(res ? { generation: (res as { layer?: { generation: number } }).layer?.generation ?? 0 } : {}) }),
  },
  deleteLayer: {
    needs: (req) => [admin(layerRefFromProto((req as DeleteLayerRequest).layer), 'delete')],
    audit: 'layer.change',
    layer: (req) => layerTextOf((req as DeleteLayerRequest).layer),
    detail: (req) => ({ force: (req as DeleteLayerRequest).force }),
  },
  // Agents report what their hosts mount; any authenticated caller may.
  reportMounts: authenticated,
};

const PROJECTION_SERVICE: Record<string, Rule> = {
  stat: readsLayer,
  readDir: readsLayer,
  read: readsLayer,
  readLink: readsLayer,
  listXattr: readsLayer,
  getXattr: readsLayer,
  statFs: readsLayer,
  walk: readsLayer,
};

const DIFF_SERVICE: Record<string, Rule> = {
  diff: {
    needs: (req) => [read(layerRefFromProto((req as DiffRequest).from, 'from')), read(layerRefFromProto((req as DiffRequest).to, 'to'))],
    layer: (req) => `${layerTextOf((req as DiffRequest).from) ?? ''}..${layerTextOf((req as DiffRequest).to) ?? ''}`,
  },
};

function selectorRule(verb: string): Rule {
  return {
    needs: (req) => {
      const r = req as GrantRequest | RevokeRequest;
      permissionFromProto(r.permission);
      return [{ kind: 'selector', selector: layerSelectorFromProto(r.layer), verb }];
    },
    audit: 'policy.change',
    layer: (req) => {
      try {
        return formatLayerSelector(layerSelectorFromProto((req as GrantRequest).layer));
      } catch {
        return undefined;
      }
    },
    detail: (req) => {
      const r = req as GrantRequest;
      let permission = '';
      try {
        permission = permissionFromProto(r.permission);
      } catch {
        // Refused by the handler; the line says what was asked.
      }
      return { grantee: r.identity, permission };
    },
  };
}

const POLICY_SERVICE: Record<string, Rule> = {
  grant: selectorRule('grant on'),
  revoke: selectorRule('revoke on'),
  listGrants: authenticated,
  checkAccess: {
    needs: (req) => {
      const r = req as CheckAccessRequest;
      return [{ kind: 'ask', identity: r.identity, ref: layerRefFromProto(r.layer) }];
    },
    layer: (req) => layerTextOf((req as CheckAccessRequest).layer),
  },
};

const IMAGE_SERVICE: Record<string, Rule> = {
  inspectImage: {
    // A layer: who may read it may look inside. A bare source: who may make a layer of it (an admin), as layer create asks.
    needs: (req) => {
      const t = (req as InspectImageRequest).target;
      if (t?.$case === 'layer') return [read(layerRefFromProto(t.layer), 'inspect')];
      return [{ kind: 'name', name: '' }, { kind: 'source', source: t?.$case === 'source' ? t.source : '', filesystemPath: undefined }];
    },
    layer: (req) => {
      const t = (req as InspectImageRequest).target;
      return t?.$case === 'layer' ? layerTextOf(t.layer) : t?.$case === 'source' ? t.source : undefined;
    },
  },
};

/** The rule of every method the resolver serves: a method without one is refused at start (see access-control.ts). */
export const ACCESS_RULES: Readonly<Record<string, Readonly<Record<string, Rule>>>> = {
  LayerService: LAYER_SERVICE,
  ProjectionService: PROJECTION_SERVICE,
  DiffService: DIFF_SERVICE,
  PolicyService: POLICY_SERVICE,
  ImageService: IMAGE_SERVICE,
  // Which build runs: any caller the TLS handshake let in (and, enforced, one its certificate names).
  VersionService: { getVersion: authenticated },
  // A map of a file's bytes is a read of that file: the same grant, the same refusal (and audit line) as a Read.
  ExtentService: {
    getStoreIdentity: authenticated,
    extentMap: readsLayer,
  },
  LayerCheckService: {
    checkLayer: {
      needs: (req) => [read(layerRefFromProto((req as CheckLayerRequest).layer), 'check')],
      layer: (req) => layerTextOf((req as CheckLayerRequest).layer),
    },
  },
};

/** A Session request reads the layer it names. */
export function sessionNeeds(req: SessionRequest): { needs: Need[]; action: string; layer: string | undefined } {
  if (!req.request) return { needs: [], action: 'Session', layer: undefined };
  const { op, req: inner } = requestOf(req.request);
  const ref = (inner as { layer?: GetLayerRequest['layer'] }).layer;
  return { needs: [read(layerRefFromProto(ref))], action: `Session.${op}`, layer: layerTextOf(ref) };
}
