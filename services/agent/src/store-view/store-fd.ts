import * as fsc from 'node:fs';
import { promisify } from 'node:util';
import { closeOpened } from './beneath';

const readFd = promisify(fsc.read);

/**
 * A store file handed out open (LayerReader.wholeFd): its descriptor,
 * positional reads on the thread pool, and a close made once — in line
 * where the store is a local filesystem. What a FileHandle gives a
 * hand-over, without a FileHandle's promise and thread-pool trip per open,
 * stat and close.
 */
export class StoreFd {
  private closing: Promise<void> | undefined;

  constructor(
    readonly fd: number,
    private readonly local: boolean,
  ) {}

  /** Up to `length` bytes at `position` into `buffer` at `offset`. */
  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    if (this.closing) throw Object.assign(new Error('store file closed'), { code: 'EBADF' });
    const { bytesRead } = await readFd(this.fd, buffer, offset, length, position);
    return { bytesRead };
  }

  /** Closes the descriptor (once, however often asked). */
  close(): Promise<void> {
    this.closing ??= closeOpened(this.fd, this.local);
    return this.closing;
  }
}
