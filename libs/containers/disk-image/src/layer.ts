import type { LayerRun } from './map-range';

/** A run of guest (virtual disk) bytes. */
export interface GuestRange {
  offset: number;
  length: number;
}

/** One image of a chain as the chain above it reads it. */
export interface Layer {
  readonly size: number;
  /** Fills target[targetOffset, +length) with bytes [offset, offset+length), which lie inside `size`. */
  readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void>;
  /**
   * The guest ranges this file answers itself (not its parent), sorted and
   * merged; absent when every byte is its own (raw, fixed, flat).
   */
  ownRanges?(): Promise<GuestRange[]>;
  /** Appends where [offset, offset+length) (inside `size`) lies, in guest order, merging runs (pushRun). */
  mapRange?(offset: number, length: number, out: LayerRun[]): Promise<void>;
}

/** Runs tasks with at most `limit` in flight; the first failure rejects after the in-flight ones settle. */
export async function runLimited(tasks: readonly (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < tasks.length && !failure) {
      const task = tasks[next++];
      try {
        await task();
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (failure) throw failure.err;
}

/** Appends [offset, offset+length) clipped to `size` to sorted ranges, merging with the last one. */
export function appendRange(out: GuestRange[], offset: number, length: number, size: number): void {
  const end = Math.min(offset + length, size);
  if (end <= offset) return;
  const last = out[out.length - 1];
  if (last && last.offset + last.length >= offset) last.length = Math.max(last.offset + last.length, end) - last.offset;
  else out.push({ offset, length: end - offset });
}

/**
 * Reads [offset, +length) of a parent layer into target; what lies past the
 * parent's end (a parent smaller than its child) reads as zeros, as qemu does.
 */
export async function readParent(parent: Layer | undefined, target: Buffer, at: number, offset: number, length: number): Promise<void> {
  const from = parent ? Math.max(0, Math.min(length, parent.size - offset)) : 0;
  if (from > 0 && parent) await parent.readInto(target, at, offset, from);
  target.fill(0, at + from, at + length);
}
