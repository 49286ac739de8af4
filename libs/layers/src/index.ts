export * from './model';
export { Catalog } from './catalog';
export type { CreateLayerInput, UpdateLayerInput, CatalogOptions, LayerListing, SourceCheck } from './catalog';
export { parseLayerRecord, serialiseLayerRecord } from './record-file';
export { parseSource, resolveLayerRoot, resolveImageFile, checkSourceInStore, isImageScheme, validateName, normaliseFilesystemPath, SOURCE_SCHEMES, SOURCE_KINDS } from './validate';
export type { ImageScheme, ParsedSource, SourceScheme } from './validate';
export { CATALOG_DIR_NAME, catalogDir } from './store-layout';
export { LIVE_FRESHNESS, CATALOG_FRESHNESS } from './live-freshness';
export { withCatalogLock } from './catalog-lock';
export {
  PERMISSIONS,
  EMPTY_POLICY,
  NO_ACCESS,
  FULL_ACCESS,
  HOST_USER_PREFIX,
  HOST_GROUP_PREFIX,
  EVERY_HOST_USER,
  PolicyIndex,
  isPermission,
  isHostIdentity,
  validateIdentity,
  validateSelector,
  parseLayerSelector,
  formatLayerSelector,
  sameSelector,
  selectorMatches,
  identitiesFor,
  sameGrant,
  addGrant,
  removeGrant,
  isEnforcedPolicy,
  markEnforced,
} from './policy';
export type { Permission, LayerSelector, Grant, Policy, LayerTarget, Access } from './policy';
export { parsePolicyFile, serialisePolicyFile } from './policy-file';
export { PolicyStore, POLICY_REFRESH_MS, POLICY_FILE_NAME, policyFile, unenforcedWriteRefused } from './policy-store';
export type { PolicySnapshot, PolicyStoreOptions, GrantInput } from './policy-store';
