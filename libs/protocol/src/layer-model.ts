import { StrataError } from '@strata/errors';
import type { Layer, LayerRef, LayerType, MountOption } from '@strata/layers';
import {
  Layer as PbLayer,
  LayerRef as PbLayerRef,
  LayerType as PbLayerType,
  MountOption as PbMountOption,
} from './gen/strata/v1/layer';

/** Conversions between the layer model (@strata/layers) and strata.v1 messages. */

const TYPE_TO_PB: Record<LayerType, PbLayerType> = {
  base: PbLayerType.LAYER_TYPE_BASE_IMAGE,
  snapshot: PbLayerType.LAYER_TYPE_SNAPSHOT,
  incremental: PbLayerType.LAYER_TYPE_INCREMENTAL_SNAPSHOT,
  overlay: PbLayerType.LAYER_TYPE_OVERLAY,
};

const OPTION_TO_PB: Record<MountOption, PbMountOption> = {
  'read-only': PbMountOption.MOUNT_OPTION_READ_ONLY,
  'no-exec': PbMountOption.MOUNT_OPTION_NO_EXEC,
  'no-suid': PbMountOption.MOUNT_OPTION_NO_SUID,
  'no-dev': PbMountOption.MOUNT_OPTION_NO_DEV,
  live: PbMountOption.MOUNT_OPTION_LIVE,
  audit: PbMountOption.MOUNT_OPTION_AUDIT,
};

export function layerTypeToProto(t: LayerType): PbLayerType {
  return TYPE_TO_PB[t];
}

/** UNSPECIFIED gives undefined (the caller decides the default). */
export function layerTypeFromProto(t: PbLayerType): LayerType | undefined {
  if (t === PbLayerType.LAYER_TYPE_UNSPECIFIED) return undefined;
  const found = (Object.keys(TYPE_TO_PB) as LayerType[]).find((k) => TYPE_TO_PB[k] === t);
  if (!found) throw StrataError.invalid(`unknown layer type ${t}`);
  return found;
}

export function mountOptionsToProto(options: readonly MountOption[]): PbMountOption[] {
  return options.map((o) => OPTION_TO_PB[o]);
}

export function mountOptionsFromProto(options: readonly PbMountOption[]): MountOption[] {
  return options
    .filter((o) => o !== PbMountOption.MOUNT_OPTION_UNSPECIFIED)
    .map((o) => {
      const found = (Object.keys(OPTION_TO_PB) as MountOption[]).find((k) => OPTION_TO_PB[k] === o);
      if (!found) throw StrataError.invalid(`unknown mount option ${o}`);
      return found;
    });
}

export function layerToProto(l: Layer): PbLayer {
  return {
    layerId: l.layerId,
    baseLayerId: l.baseLayerId,
    name: l.name,
    source: l.source,
    filesystemPath: l.filesystemPath,
    layerType: layerTypeToProto(l.layerType),
    mountOptions: mountOptionsToProto(l.mountOptions),
    generation: l.generation,
    createTimeMs: l.createTimeMs,
    updateTimeMs: l.updateTimeMs,
  };
}

export function layerFromProto(l: PbLayer): Layer {
  return {
    layerId: l.layerId,
    baseLayerId: l.baseLayerId,
    name: l.name,
    source: l.source,
    filesystemPath: l.filesystemPath,
    layerType: layerTypeFromProto(l.layerType) ?? 'base',
    mountOptions: mountOptionsFromProto(l.mountOptions),
    generation: l.generation,
    createTimeMs: l.createTimeMs,
    updateTimeMs: l.updateTimeMs,
  };
}

export function layerRefToProto(ref: LayerRef): PbLayerRef {
  return 'id' in ref ? { ref: { $case: 'id', id: ref.id } } : { ref: { $case: 'name', name: ref.name } };
}

/** A request's layer reference; a missing one or id 0 is INVALID_ARGUMENT. */
export function layerRefFromProto(ref: PbLayerRef | undefined, field = 'layer'): LayerRef {
  const r = ref?.ref;
  if (r?.$case === 'id' && r.id > 0) return { id: r.id };
  if (r?.$case === 'name' && r.name !== '') return { name: r.name };
  throw StrataError.invalid(`${field}: a layer id (> 0) or name is required`);
}

/** Optional reference: unset gives undefined. */
export function optionalLayerRefFromProto(ref: PbLayerRef | undefined, field: string): LayerRef | undefined {
  return ref?.ref === undefined ? undefined : layerRefFromProto(ref, field);
}
