import { crc32 } from 'node:zlib';

/** lvm2's calc_crc seed (lib/misc/crc.h INITIAL_CRC). */
export const LVM_INITIAL_CRC = 0xf597a6cf;

/**
 * lvm2's calc_crc: the reflected CRC-32 (polynomial 0xedb88320) run from
 * `initial`, without zlib's final inversion. zlib inverts on the way in and
 * out, so inverting around it gives lvm2's value; chaining (`initial` = the
 * previous result) continues a checksum across a wrapped metadata text.
 */
export function lvmCrc(data: Uint8Array, initial: number = LVM_INITIAL_CRC): number {
  return ~crc32(data, ~initial >>> 0) >>> 0;
}
