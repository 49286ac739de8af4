import type { ImageServiceServer, InspectImageResponse } from '@strata/protocol';
import { layerRefFromProto } from '@strata/protocol';
import { StrataError } from '@strata/errors';
import type { DiskReport } from '@strata/traversal';
import type { ImageOps } from '../image-ops';
import { unary, type RpcContext } from './calls';

function reportToProto(r: DiskReport): InspectImageResponse {
  const mountOf = new Map(r.guest.mounts.map((m) => [m.volume.label, m.path]));
  return {
    imageFormat: r.format,
    virtualSize: r.size,
    partitionScheme: r.inventory.scheme,
    os: {
      type: r.guest.os.type,
      distribution: r.guest.os.distribution ?? '',
      version: r.guest.os.version ?? '',
      product: r.guest.os.product ?? '',
      hostname: r.guest.os.hostname ?? '',
    },
    volumes: r.inventory.volumes.map((v) => {
      const fs = r.guest.filesystems.find((f) => f.volume === v);
      return {
        volume: v.label === '0' ? '' : v.label,
        description: v.describe,
        offset: v.offset,
        size: v.size,
        holds: v.holds,
        filesystemType: fs?.type ?? v.filesystem ?? '',
        label: fs?.label ?? '',
        uuid: fs?.uuid ?? '',
        partitionLabel: v.partLabel ?? '',
        mountpoint: mountOf.get(v.label) ?? '',
      };
    }),
    mounts: r.guest.mounts.map((m) => ({
      path: m.path,
      volume: m.volume.label === '0' ? '' : m.volume.label,
      filesystemType: m.type,
      filesystemPath: m.filesystemPath,
      options: m.options,
    })),
    absent: r.guest.absent.map((a) => ({ path: a.path, spec: a.spec, reason: a.why })),
    problems: r.guest.problems.map((p) => `${p.where}: ${p.what}`),
    warnings: r.inventory.warnings,
    imageSubformat: r.subformat ?? '',
    snapshots: r.snapshots.map((s) => ({ id: s.id, name: s.name, vmStateSize: s.vmStateSize, dateMs: s.date.getTime(), virtualSize: s.virtualSize })),
  };
}

/** ImageService: disk images looked into without mounting. */
export function imageService(images: ImageOps, rpc: RpcContext): ImageServiceServer {
  return {
    inspectImage: unary('InspectImage', rpc, async (req) => {
      const t = req.target;
      if (t?.$case === 'layer') return reportToProto(await images.inspect({ layer: layerRefFromProto(t.layer) }));
      if (t?.$case === 'source' && t.source !== '') return reportToProto(await images.inspect({ source: t.source }));
      throw StrataError.invalid('InspectImage needs a layer or a source');
    }),
  };
}
