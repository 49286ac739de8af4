export { buildProgram } from './program';
export type { GlobalOptions, Io } from './command-context';
export { main } from './main';
export * from './format';
