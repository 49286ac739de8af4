export { parseControlRequest } from './protocol';
export type { ControlError, ControlRequest, ControlResponse, MountInfo } from './protocol';
export { defaultSocketPath } from './socket-path';
export { controlRequest } from './control-client';
export { fuseOptionList } from './fuse-options';
export type { KernelOptions } from './fuse-options';
