import { formatLayerSelector, type Grant } from '@strata/layers';
import type { GrantListing } from '@strata/client';

/** `strata grants` shapes. Scripts depend on the JSON one: change it only by adding fields. */

export function grantJson(g: Grant): Record<string, unknown> {
  return {
    identity: g.identity,
    permission: g.permission,
    // As `strata grant` takes it: an id, a name, or a prefix ending in *.
    layer: formatLayerSelector(g.layer),
    grantedBy: g.grantedBy,
    createTime: new Date(g.createTimeMs).toISOString(),
  };
}

export function grantsJson(l: GrantListing): Record<string, unknown> {
  return { generation: l.generation, enforced: l.enforced, admins: l.admins, grants: l.grants.map(grantJson) };
}

export function grantTable(l: GrantListing): string {
  const rows = [['IDENTITY', 'PERMISSION', 'LAYER', 'GRANTED-BY', 'CREATED']];
  for (const g of l.grants) {
    rows.push([g.identity, g.permission, formatLayerSelector(g.layer), g.grantedBy || '-', new Date(g.createTimeMs).toISOString().slice(0, 19).replace('T', ' ')]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
  lines.push('', `policy generation ${l.generation}${l.admins.length > 0 ? `; --admin: ${l.admins.join(', ')}` : ''}`);
  if (!l.enforced) lines.push('not enforced: this resolver serves no mutual TLS (--tls-client-ca), so every caller may read and change everything');
  return lines.join('\n');
}
