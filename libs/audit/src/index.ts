export { AuditLog } from './audit-log';
export type { AuditEvent, AuditResult, AuditAppendOptions, AuditLogOptions } from './audit-log';
