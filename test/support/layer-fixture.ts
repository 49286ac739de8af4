export { writeLayer, writeStack } from '@strata/harness';
export type { FixtureEntry, LayerSpec, Spelling } from '@strata/harness';
