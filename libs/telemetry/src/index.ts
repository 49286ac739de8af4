export { createLogger } from './logger';
export type { Logger, LoggerOptions } from './logger';
export { onShutdown } from './shutdown';
export type { ShutdownHandler } from './shutdown';
