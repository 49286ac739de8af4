export { StrataProcess, startStrata, exitOf, STRATA_BIN, DEFAULT_STOP_GRACE_MS, EXIT_WITH_PARENT_ENV } from './strata-process';
export type { StrataRole, ExitStatus, LaunchOptions, StartOptions, Started } from './strata-process';
export { parseLogLine } from './log-lines';
export type { LogLine } from './log-lines';
