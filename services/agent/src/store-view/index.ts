export { StoreView } from './store-view';
export type { StoreViewClient, StoreViewCounters, StoreViewOptions } from './store-view';
export { LayerReader, type Fallback } from './layer-reader';
export { StoreFd } from './store-fd';
export { RunsFile } from './runs-file';
