import type { Layer } from '../layer';
import { pushRun, type LayerRun } from '../map-range';
import type { StoreFile } from '../store-file';

/** A raw image: the virtual disk is the file, byte for byte. */
export class RawLayer implements Layer {
  readonly size: number;

  constructor(private readonly file: StoreFile) {
    this.size = file.size;
  }

  readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    return this.file.readInto(target, targetOffset, length, offset);
  }

  async mapRange(offset: number, length: number, out: LayerRun[]): Promise<void> {
    pushRun(out, { kind: 'data', file: this.file, fileOffset: offset, length });
  }
}
