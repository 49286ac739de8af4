// The audit writer imports nothing but node: it is meant to become a library the agent shares (mount, unmount, file-open events).
export { AuditLog } from './audit-log';
export type { AuditEvent, AuditResult, AuditAppendOptions, AuditLogOptions } from './audit-log';
