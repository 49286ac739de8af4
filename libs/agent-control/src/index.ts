export { parseControlRequest } from './protocol';
export type { AgentStatus, ControlError, ControlRequest, ControlResponse, MountHealthInfo, MountInfo, MountState, ResolverState } from './protocol';
export { defaultSocketPath } from './socket-path';
export { controlRequest } from './control-client';
export { certificateIdentity } from './certificate-identity';
export { agentStateDir, desiredStateFile, forgetDesiredMount } from './desired-state';
