// Node only: the resolver (layer and policy changes, denials) and the agent (mounts, unmounts, file opens of AUDIT layers) write the same stream.
export { AuditLog } from './audit-log';
export type { AuditEvent, AuditResult, AuditAppendOptions, AuditLogOptions } from './audit-log';
