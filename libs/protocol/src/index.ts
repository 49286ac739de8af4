export * from './gen/strata/v1/layer';
export * from './gen/strata/v1/projection';
export * from './gen/strata/v1/session';
export * from './gen/strata/v1/diff';
export * from './gen/strata/v1/policy';
export * from './gen/strata/v1/image';
export * from './gen/strata/v1/version';
export * from './gen/strata/v1/check';
export * from './gen/strata/v1/extent';
export { ErrorInfo } from './gen/strata/v1/errors';
export { toServiceError, fromServiceError, errorInfoOf, strataErrorFromInfo } from './status-details';
// Records of the resolvers' shared metadata cache (strata.cache.v1, internal).
export { NodeRecord, ListingRecord, XattrRecord, Xattr } from './gen/strata/cache/v1/records';
export {
  layerToProto,
  layerFromProto,
  layerRefToProto,
  layerRefFromProto,
  optionalLayerRefFromProto,
  layerTypeToProto,
  layerTypeFromProto,
  mountOptionsToProto,
  mountOptionsFromProto,
} from './layer-model';
export { permissionToProto, permissionFromProto, layerSelectorToProto, layerSelectorFromProto, grantToProto, grantFromProto } from './policy-model';
export { changeKindToProto, changeKindFromProto } from './change-kind';
export type { ChangeKindName } from './change-kind';
export { PROTO_ROOT, API_PROTO_FILES } from './proto-files';
export * from './operations';
export { readPemFile, MAX_PEM_BYTES } from './pem-file';
export { DATA_MAGIC, ANSWER_HEADER_BYTES, ANSWER_DATA, ANSWER_ERROR, DATA_PORT_HEADER, MAX_ERROR_BYTES, answerHeader } from './data-stream-wire';
