/** One line a strata service writes on stderr: a pino JSON object, or anything else it printed. */
export type LogLine = Record<string, unknown> & { event?: string; level?: string };

/** A line that is not a JSON object (a crash trace, a native library's warning) keeps its text. */
export function parseLogLine(text: string): LogLine {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as LogLine;
  } catch {
    // Falls through: not JSON.
  }
  return { event: 'non-json', text };
}

/** The last `limit` lines, for an error that has to say what a process printed before it failed. */
export class LineTail {
  private readonly lines: string[] = [];

  constructor(private readonly limit: number) {}

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.limit) this.lines.shift();
  }

  text(): string {
    return this.lines.length === 0 ? '(it printed nothing)' : this.lines.join('\n');
  }
}
