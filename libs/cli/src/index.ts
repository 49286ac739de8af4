export { buildProgram } from './program';
export type { GlobalOptions, Io } from './program';
export { main } from './main';
export * from './format';
