import type { ServiceDefinition } from '@grpc/grpc-js';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { Errno, GrpcCode, StrataError } from '@strata/errors';

const UNDECODABLE = Symbol('undecodable');

/** Stands in for a request message that did not decode (e.g. a uint64 beyond 2^53). */
export interface Undecodable {
  [UNDECODABLE]: true;
  error: StrataError;
  /** Field 1 when it is a varint: the Session request id, so the error reaches its caller. */
  id: number | undefined;
}

export function undecodableOf(message: unknown): Undecodable | undefined {
  return typeof message === 'object' && message !== null && UNDECODABLE in message ? (message as Undecodable) : undefined;
}

function peekId(buf: Buffer): number | undefined {
  try {
    const reader = new BinaryReader(buf);
    while (reader.pos < reader.len) {
      const [field, wire] = reader.tag();
      if (field === 1 && wire === WireType.Varint) {
        const id = Number(reader.uint64());
        return Number.isSafeInteger(id) ? id : undefined;
      }
      reader.skip(wire, field);
    }
  } catch {
    // Not even the envelope parses; the caller closes the stream.
  }
  return undefined;
}

/**
 * grpc-js answers a request that fails to deserialize with INTERNAL and no
 * details. The API promises INVALID_ARGUMENT for bad input, so each request
 * deserializer is wrapped to hand the handler an Undecodable instead.
 */
export function withInvalidArgumentOnBadInput<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    out[name] = {
      ...method,
      requestDeserialize: (buf: Buffer): unknown => {
        try {
          return method.requestDeserialize(buf);
        } catch (err) {
          const undecodable: Undecodable = {
            [UNDECODABLE]: true,
            error: new StrataError(Errno.EINVAL, `request does not decode: ${err instanceof Error ? err.message : String(err)}`, {
              code: GrpcCode.INVALID_ARGUMENT,
            }),
            id: peekId(buf),
          };
          return undecodable;
        }
      },
    };
  }
  return out as D;
}
