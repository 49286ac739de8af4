export { parseControlRequest } from './protocol';
export type { ControlError, ControlRequest, ControlResponse, MountInfo } from './protocol';
export { defaultSocketPath } from './socket-path';
export { controlRequest } from './control-client';
