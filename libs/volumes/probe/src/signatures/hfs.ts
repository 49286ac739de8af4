import type { Signature } from './signature';

/**
 * HFS ("BD") and HFS+ / HFSX ("H+", "HX", or HFS+ embedded in an HFS
 * wrapper) at 1 KiB. HFS's label is its Pascal-string volume name; HFS+
 * keeps its name in the catalog B-tree, which is not read here.
 */
export const hfsSignature: Signature = {
  name: 'hfs',
  async probe(r) {
    const sb = await r.at(1024, 512);
    if (!sb) return undefined;
    const sig = sb.toString('latin1', 0, 2);
    if (sig === 'BD') {
      const embedded = sb.toString('latin1', 0x7c, 0x7e);
      if (embedded === 'H+' || embedded === 'HX') return { kind: 'filesystem', type: 'hfsplus', detail: 'HFS+ in an HFS wrapper' };
      const block = sb.readUInt32BE(0x14);
      if (block === 0 || block % 512 !== 0) return undefined;
      const len = Math.min(sb[0x24], 27);
      const label = sb.subarray(0x25, 0x25 + len).toString('latin1').replace(/\s+$/, '');
      return { kind: 'filesystem', type: 'hfs', label: label || undefined };
    }
    if (sig === 'H+' || sig === 'HX') {
      const block = sb.readUInt32BE(0x28);
      if (block < 512 || (block & (block - 1)) !== 0) return undefined;
      return { kind: 'filesystem', type: 'hfsplus', detail: sig === 'HX' ? 'HFSX (case-sensitive HFS+)' : undefined };
    }
    return undefined;
  },
};
