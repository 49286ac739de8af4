export { Agent } from './agent';
export type { AgentOptions } from './agent';
export { main } from './main';
export { fuseOptionList } from './fuse/strata-fuse';
export type { KernelOptions } from './fuse/strata-fuse';
