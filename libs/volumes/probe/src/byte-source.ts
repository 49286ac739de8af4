/** Random-access, read-only bytes: structurally @strata/disk-image's ByteSource (no dependency on it). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}
