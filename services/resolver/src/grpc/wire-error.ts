import type { ServiceError } from '@grpc/grpc-js';
import { StrataError } from '@strata/errors';
import { type ErrorInfo, errorInfoOf, toServiceError } from '@strata/protocol';

/** Bytes of the request's path an error sends back: enough to recognise it, never the whole of what a client sent. */
export const ECHO_PATH_BYTES = 1024;
/** Characters of an error message sent back (a message quotes the path or layer name it is about). */
export const ECHO_MESSAGE_CHARS = 2048;

/**
 * An error as the client may be sent it. Errors quote what they are about
 * (the path, the layer name), and those come from the client: a request of
 * near --max-message-bytes would otherwise come back as a trailer past the
 * 64 KiB HTTP/2 header list a client accepts, which the client drops
 * silently and waits for its deadline instead of getting its answer.
 */
export function bounded(err: StrataError): StrataError {
  const longPath = err.path !== undefined && err.path.length > ECHO_PATH_BYTES;
  const longMessage = err.message.length > ECHO_MESSAGE_CHARS;
  if (!longPath && !longMessage) return err;
  const message = longMessage ? `${err.message.slice(0, ECHO_MESSAGE_CHARS)}… (${err.message.length} characters)` : err.message;
  return new StrataError(err.errno, message, { code: err.code, path: longPath ? err.path?.subarray(0, ECHO_PATH_BYTES) : err.path, cause: err });
}

/** The gRPC status of a failed call (trailers), bounded. */
export function wireError(err: StrataError): Partial<ServiceError> {
  return toServiceError(bounded(err));
}

/** The ErrorInfo of a failed Session request, bounded like a trailer. */
export function wireErrorInfo(err: StrataError): ErrorInfo {
  return errorInfoOf(bounded(err));
}
