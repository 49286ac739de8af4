export { Fat } from './fat';
export { fatDriver } from './driver';
export type { Geometry, FatBits } from './boot-sector';
