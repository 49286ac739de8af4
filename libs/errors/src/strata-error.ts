import { Errno, errnoName, isErrnoName } from './errno';
import { GrpcCode, GrpcCodeValue } from './grpc-code';

/** The gRPC code a bare errno maps to when the thrower did not choose one. */
export function defaultCodeFor(errno: number): GrpcCodeValue {
  switch (errno) {
    case Errno.ENOENT:
    case Errno.ENODATA:
      return GrpcCode.NOT_FOUND;
    case Errno.EINVAL:
    case Errno.ENAMETOOLONG:
    case Errno.ELOOP:
    case Errno.ENOTDIR:
    case Errno.EISDIR:
    case Errno.ERANGE:
    case Errno.EOVERFLOW:
      return GrpcCode.INVALID_ARGUMENT;
    case Errno.EEXIST:
      return GrpcCode.ALREADY_EXISTS;
    case Errno.EACCES:
    case Errno.EPERM:
    case Errno.EROFS:
      return GrpcCode.PERMISSION_DENIED;
    case Errno.EBUSY:
      return GrpcCode.FAILED_PRECONDITION;
    case Errno.EAGAIN:
    case Errno.EIO:
      return GrpcCode.UNAVAILABLE;
    case Errno.ETIMEDOUT:
      return GrpcCode.DEADLINE_EXCEEDED;
    case Errno.ECANCELED:
      return GrpcCode.CANCELLED;
    case Errno.ENOSYS:
    case Errno.EOPNOTSUPP:
      return GrpcCode.UNIMPLEMENTED;
    case Errno.ENOMEM:
    case Errno.ENOSPC:
    case Errno.EFBIG:
      return GrpcCode.RESOURCE_EXHAUSTED;
    default:
      return GrpcCode.INTERNAL;
  }
}

export interface StrataErrorOptions {
  /** Path inside the layer (bytes) the error is about. */
  path?: Buffer;
  /** Overrides the gRPC code derived from the errno. */
  code?: GrpcCodeValue;
  cause?: unknown;
}

/**
 * Every error strata raises on purpose. It carries the errno the kernel
 * should see and the gRPC status a remote caller should see, so that no layer
 * of the system has to guess one from the other.
 */
export class StrataError extends Error {
  readonly errno: number;
  readonly code: GrpcCodeValue;
  readonly path: Buffer | undefined;

  constructor(errno: number, message: string, options: StrataErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StrataError';
    this.errno = errno;
    this.code = options.code ?? defaultCodeFor(errno);
    this.path = options.path;
  }

  get errnoName(): string {
    return errnoName(this.errno);
  }
}

export function isStrataError(err: unknown): err is StrataError {
  return err instanceof StrataError;
}

interface NodeSystemError {
  code: string;
  errno?: number;
}

function isNodeSystemError(err: unknown): err is NodeSystemError & Error {
  return err instanceof Error && typeof (err as Partial<NodeSystemError>).code === 'string';
}

/**
 * Wraps an error thrown by node:fs into a StrataError with the same errno.
 * Unknown errors become EIO: the caller sees a failure, never a crash.
 */
export function fromSystemError(err: unknown, message: string, path?: Buffer): StrataError {
  if (err instanceof StrataError) return err;
  if (isNodeSystemError(err)) {
    const name = err.code;
    const errno = isErrnoName(name) ? Errno[name] : typeof err.errno === 'number' ? Math.abs(err.errno) : Errno.EIO;
    return new StrataError(errno, `${message}: ${name}`, { path, cause: err });
  }
  const text = err instanceof Error ? err.message : String(err);
  return new StrataError(Errno.EIO, `${message}: ${text}`, { path, cause: err });
}
