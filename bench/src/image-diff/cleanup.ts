/**
 * What the benchmark has mounted, attached and started, undone in reverse
 * order: when a step is done with it, when the run fails, and on SIGINT or
 * SIGTERM (a loop device or mount left behind outlives the process).
 */
export class Cleanup {
  private readonly steps: { what: string; undo: () => void | Promise<void> }[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly log: (s: string) => void) {}

  /** Registers an undo step; the returned function runs it now (once) and forgets it. */
  add(what: string, undo: () => void | Promise<void>): () => Promise<void> {
    const step = { what, undo };
    this.steps.push(step);
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await step.undo();
    };
  }

  /** Undoes everything still registered, newest first; a failing step is logged and the rest still run. */
  all(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop()!;
        try {
          await step.undo();
        } catch (err) {
          this.log(`cleanup: ${step.what}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    })();
    return this.running;
  }

  /** On SIGINT/SIGTERM: undo everything, then exit as a signalled process would. */
  onSignals(): void {
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      process.once(sig, () => {
        this.log(`${sig}: cleaning up`);
        void this.all().finally(() => process.exit(code));
      });
    }
  }
}
