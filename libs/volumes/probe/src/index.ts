export type { ByteSource } from './byte-source';
export { probe } from './probe';
export { describeProbe } from './describe';
export { READABLE_TYPES, type Probe, type ProbeKind } from './probe-result';
