import { close, fdatasync, ftruncate, open, read, write } from 'node:fs';

/**
 * The few fs calls the cache makes per file, on plain descriptors, as
 * promises: a FileHandle adds an object, a promise wrapper and a close
 * tracker to every call, several times the cost of the call itself for the
 * small files a cold read fills (and reuses after a restart) by thousands.
 * The descriptors are the cache's own; whoever opens one closes it.
 */
function call<T>(start: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value))));
}

export function openFd(file: string, flags: number, mode = 0o600): Promise<number> {
  return call<number>((cb) => open(file, flags, mode, cb));
}

export function readFd(fd: number, into: Buffer, offset: number, length: number, pos: number): Promise<number> {
  return call<number>((cb) => read(fd, into, offset, length, pos, cb));
}

/** At `pos`, or at the end of a file opened O_APPEND when `pos` is null. */
export function writeFd(fd: number, b: Buffer, offset: number, length: number, pos: number | null): Promise<number> {
  return call<number>((cb) => write(fd, b, offset, length, pos, cb));
}

export function datasyncFd(fd: number): Promise<void> {
  return call<void>((cb) => fdatasync(fd, (err) => cb(err, undefined)));
}

export function truncateFd(fd: number, size: number): Promise<void> {
  return call<void>((cb) => ftruncate(fd, size, (err) => cb(err, undefined)));
}

export function closeFd(fd: number): Promise<void> {
  return call<void>((cb) => close(fd, (err) => cb(err, undefined)));
}
