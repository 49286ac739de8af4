export * from './model';
export { Catalog } from './catalog';
export type { CreateLayerInput, UpdateLayerInput, CatalogOptions, LayerListing } from './catalog';
export { parseLayerRecord, serialiseLayerRecord } from './record-file';
export { parseSource, resolveLayerRoot, validateName, normaliseFilesystemPath } from './validate';
export { CATALOG_DIR_NAME, catalogDir } from './store-layout';
export { LIVE_FRESHNESS, CATALOG_FRESHNESS } from './live-freshness';
