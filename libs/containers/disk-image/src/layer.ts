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
