import { Errno, GrpcCode, StrataError } from '@strata/errors';
import { Layer, MAX_CHAIN_DEPTH, isLayerType, isMountOption, normaliseMountOptions } from './model';

function corrupt(file: string, field: string, problem: string): StrataError {
  return new StrataError(Errno.EIO, `catalog file ${file}: field "${field}" ${problem}`, {
    code: GrpcCode.DATA_LOSS,
  });
}

function uint(obj: Record<string, unknown>, file: string, field: string, min: number): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw corrupt(file, field, `must be an integer >= ${min}, found ${JSON.stringify(v)}`);
  }
  return v;
}

function str(obj: Record<string, unknown>, file: string, field: string): string {
  const v = obj[field];
  if (typeof v !== 'string') throw corrupt(file, field, `must be a string, found ${JSON.stringify(v)}`);
  return v;
}

/**
 * Parses one catalog file. Anything malformed is reported with the file and
 * the field, because an operator will have to repair it by hand.
 */
export function parseLayerRecord(text: string, file: string): Layer {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StrataError(Errno.EIO, `catalog file ${file}: not valid JSON (${(err as Error).message})`, {
      code: GrpcCode.DATA_LOSS,
    });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw corrupt(file, '(top level)', 'must be a JSON object');
  }
  const obj = raw as Record<string, unknown>;
  const layerType = str(obj, file, 'layerType');
  if (!isLayerType(layerType)) throw corrupt(file, 'layerType', `has unknown value "${layerType}"`);
  const options = obj.mountOptions;
  if (!Array.isArray(options) || !options.every((o): o is string => typeof o === 'string' && isMountOption(o))) {
    throw corrupt(file, 'mountOptions', `must be a list of known mount options, found ${JSON.stringify(options)}`);
  }
  const layer: Layer = {
    layerId: uint(obj, file, 'layerId', 1),
    baseLayerId: uint(obj, file, 'baseLayerId', 0),
    name: str(obj, file, 'name'),
    source: str(obj, file, 'source'),
    filesystemPath: str(obj, file, 'filesystemPath'),
    layerType,
    mountOptions: normaliseMountOptions(options.filter(isMountOption)),
    generation: uint(obj, file, 'generation', 1),
    createTimeMs: uint(obj, file, 'createTimeMs', 0),
    updateTimeMs: uint(obj, file, 'updateTimeMs', 0),
  };
  if ((layer.layerType === 'base') !== (layer.baseLayerId === 0)) {
    throw corrupt(file, 'baseLayerId', 'must be 0 exactly when layerType is "base"');
  }
  if (layer.baseLayerId === layer.layerId) throw corrupt(file, 'baseLayerId', 'names the layer itself');
  return layer;
}

export function serialiseLayerRecord(layer: Layer): string {
  return `${JSON.stringify(layer, null, 2)}\n`;
}

export { MAX_CHAIN_DEPTH };
