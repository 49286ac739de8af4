import { Metadata, ServiceError, status as GrpcStatus } from '@grpc/grpc-js';
import { Errno, GrpcCode, GrpcCodeValue, StrataError, errnoName, errorMessage, isStrataError } from '@strata/errors';
import { Status } from './gen/google/rpc/status';
import { ErrorInfo } from './gen/strata/v1/errors';

const DETAILS_KEY = 'grpc-status-details-bin';
const ERROR_INFO_TYPE_URL = 'type.googleapis.com/strata.v1.ErrorInfo';

export function errorInfoOf(err: StrataError): ErrorInfo {
  return {
    errno: err.errno,
    errnoName: errnoName(err.errno),
    path: err.path ?? Buffer.alloc(0),
    code: err.code,
    message: err.message,
  };
}

export function strataErrorFromInfo(info: ErrorInfo): StrataError {
  return new StrataError(info.errno, info.message, {
    code: info.code as GrpcCodeValue,
    path: info.path.length > 0 ? info.path : undefined,
  });
}

/**
 * Turns a StrataError into what a grpc-js handler passes to its callback:
 * the gRPC code plus a google.rpc.Status in the standard trailer, so any
 * gRPC client (not only ours) can read the errno.
 */
export function toServiceError(err: StrataError): Partial<ServiceError> {
  const info = errorInfoOf(err);
  const status = Status.encode({
    code: err.code,
    message: err.message,
    details: [{ typeUrl: ERROR_INFO_TYPE_URL, value: Buffer.from(ErrorInfo.encode(info).finish()) }],
  }).finish();
  const metadata = new Metadata();
  metadata.set(DETAILS_KEY, Buffer.from(status));
  return { code: err.code as GrpcStatus, details: err.message, metadata };
}

interface GrpcLikeError {
  code?: number;
  details?: string;
  message?: string;
  metadata?: Metadata;
}

/**
 * The inverse of toServiceError, for clients: the errno the resolver decided
 * when the trailer has one; otherwise an errno derived from the gRPC code
 * (UNAVAILABLE and DEADLINE_EXCEEDED are transport trouble: EIO/ETIMEDOUT).
 */
export function fromServiceError(err: unknown): StrataError {
  if (isStrataError(err)) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as GrpcLikeError;
  const raw = e.metadata?.get(DETAILS_KEY)[0];
  if (raw instanceof Buffer) {
    try {
      const status = Status.decode(raw);
      const detail = status.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
      if (detail) return strataErrorFromInfo(ErrorInfo.decode(detail.value));
    } catch {
      // A malformed trailer is treated as if there were none.
    }
  }
  const code = (typeof e.code === 'number' ? e.code : GrpcCode.UNKNOWN) as GrpcCodeValue;
  const message = e.details ?? errorMessage(err);
  return new StrataError(errnoForCode(code), message, { code, cause: err });
}

function errnoForCode(code: GrpcCodeValue): number {
  switch (code) {
    case GrpcCode.NOT_FOUND:
      return Errno.ENOENT;
    case GrpcCode.INVALID_ARGUMENT:
    case GrpcCode.OUT_OF_RANGE:
      return Errno.EINVAL;
    case GrpcCode.ALREADY_EXISTS:
      return Errno.EEXIST;
    case GrpcCode.PERMISSION_DENIED:
    case GrpcCode.UNAUTHENTICATED:
      return Errno.EACCES;
    case GrpcCode.DEADLINE_EXCEEDED:
      return Errno.ETIMEDOUT;
    case GrpcCode.CANCELLED:
      return Errno.ECANCELED;
    case GrpcCode.UNIMPLEMENTED:
      return Errno.ENOSYS;
    case GrpcCode.RESOURCE_EXHAUSTED:
      return Errno.ENOMEM;
    case GrpcCode.FAILED_PRECONDITION:
    case GrpcCode.ABORTED:
      return Errno.EBUSY;
    default:
      return Errno.EIO;
  }
}
