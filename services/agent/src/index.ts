export { Agent } from './agent';
export type { AgentOptions } from './agent';
export { main } from './main';
