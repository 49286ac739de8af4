export * from './model';
export { Catalog } from './catalog';
export type { CreateLayerInput, UpdateLayerInput, CatalogOptions, LayerListing, SourceCheck } from './catalog';
export { parseLayerRecord, serialiseLayerRecord } from './record-file';
export { parseSource, resolveLayerRoot, resolveImageFile, checkSourceInStore, isImageScheme, validateName, normaliseFilesystemPath, SOURCE_SCHEMES } from './validate';
export type { ParsedSource, SourceScheme } from './validate';
export { CATALOG_DIR_NAME, catalogDir } from './store-layout';
export { LIVE_FRESHNESS, CATALOG_FRESHNESS } from './live-freshness';
