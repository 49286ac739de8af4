import * as path from 'node:path';

/** The proto/ folder of the repository (this file runs from libs/protocol/dist). */
export const PROTO_ROOT = path.resolve(__dirname, '../../../proto');

/** The public strata.v1 API files, relative to PROTO_ROOT (for reflection and other tools). */
export const API_PROTO_FILES = [
  'strata/v1/errors.proto',
  'strata/v1/layer.proto',
  'strata/v1/projection.proto',
  'strata/v1/session.proto',
  'strata/v1/diff.proto',
  'strata/v1/policy.proto',
  'strata/v1/image.proto',
  'strata/v1/version.proto',
  'strata/v1/check.proto',
  'strata/v1/extent.proto',
];
