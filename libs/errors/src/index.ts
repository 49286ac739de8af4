export { Errno, errnoName, isErrnoName } from './errno';
export type { ErrnoName } from './errno';
export { GrpcCode } from './grpc-code';
export type { GrpcCodeValue } from './grpc-code';
export { StrataError, isStrataError, errorMessage, defaultCodeFor } from './strata-error';
export type { StrataErrorOptions } from './strata-error';
