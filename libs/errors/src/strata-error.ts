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
    case Errno.EUCLEAN:
    case Errno.EBADMSG:
      return GrpcCode.DATA_LOSS;
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
 * Marks strata errors across duplicated copies of this module (two versions
 * in node_modules, a bundled CLI): `instanceof` fails there, a registered
 * symbol does not.
 */
const BRAND = Symbol.for('strata.StrataError');

/** The message of anything thrown, for logs and one-line errors. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') {
    return (err as { message: string }).message;
  }
  return String(err);
}

interface NodeSystemError {
  code: string;
  errno?: number;
}

function isNodeSystemError(err: unknown): err is NodeSystemError & Error {
  return err instanceof Error && typeof (err as Partial<NodeSystemError>).code === 'string';
}

/** Status codes that say the request may not have been served: repeating a read-only call elsewhere is safe. */
const RETRYABLE_CODES: ReadonlySet<number> = new Set([GrpcCode.UNAVAILABLE]);

/**
 * Every error strata raises on purpose. It carries the errno the kernel
 * should see and the gRPC status a remote caller should see, so that no layer
 * of the system has to guess one from the other.
 */
export class StrataError extends Error {
  readonly errno: number;
  readonly code: GrpcCodeValue;
  readonly path: Buffer | undefined;
  readonly [BRAND] = true;

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

  /** Whether the status says the request may not have been served, so a read-only call may be repeated. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }

  /**
   * The one normaliser: a strata error stays as it is; a Node system error
   * keeps its errno (context prefixed to the message); anything else is EIO,
   * so the caller sees a failure, never a crash.
   */
  static from(err: unknown, context?: string, path?: Buffer): StrataError {
    if (isStrataError(err)) return err;
    const prefix = context ? `${context}: ` : '';
    if (isNodeSystemError(err)) {
      const name = err.code;
      const errno = isErrnoName(name) ? Errno[name] : typeof err.errno === 'number' ? Math.abs(err.errno) : Errno.EIO;
      return new StrataError(errno, `${prefix}${name}`, { path, cause: err });
    }
    return new StrataError(Errno.EIO, `${prefix}${errorMessage(err)}`, { path, cause: err });
  }

  /** Bad input from a caller: EINVAL, INVALID_ARGUMENT. */
  static invalid(message: string, path?: Buffer): StrataError {
    return new StrataError(Errno.EINVAL, message, { code: GrpcCode.INVALID_ARGUMENT, path });
  }

  /** ENOENT, NOT_FOUND. */
  static notFound(message: string, path?: Buffer): StrataError {
    return new StrataError(Errno.ENOENT, message, { code: GrpcCode.NOT_FOUND, path });
  }

  /** ENOTDIR for a path whose middle is not a directory. */
  static notDir(message: string, path?: Buffer): StrataError {
    return new StrataError(Errno.ENOTDIR, message, { path });
  }

  /** EIO: the data could not be read. */
  static io(message: string, options: Omit<StrataErrorOptions, 'code'> = {}): StrataError {
    return new StrataError(Errno.EIO, message, options);
  }

  /** EIO, DATA_LOSS: stored data (an image, a catalog file) is corrupt. */
  static corrupt(message: string, options: Omit<StrataErrorOptions, 'code'> = {}): StrataError {
    return new StrataError(Errno.EIO, message, { ...options, code: GrpcCode.DATA_LOSS });
  }

  /** EOPNOTSUPP, UNIMPLEMENTED: a feature strata does not have. */
  static unsupported(message: string, path?: Buffer): StrataError {
    return new StrataError(Errno.EOPNOTSUPP, message, { code: GrpcCode.UNIMPLEMENTED, path });
  }

  /** EBUSY, FAILED_PRECONDITION: the request is valid but the state does not allow it. */
  static precondition(message: string, errno: number = Errno.EBUSY): StrataError {
    return new StrataError(errno, message, { code: GrpcCode.FAILED_PRECONDITION });
  }

  /** EIO, UNAVAILABLE: no resolver (or backend) answered; retryable. */
  static unavailable(message: string, cause?: unknown): StrataError {
    return new StrataError(Errno.EIO, message, { code: GrpcCode.UNAVAILABLE, cause });
  }
}

export function isStrataError(err: unknown): err is StrataError {
  return typeof err === 'object' && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true;
}
