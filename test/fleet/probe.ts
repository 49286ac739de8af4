/**
 * The fleet's eyes inside its network: one long-lived process in a namespace
 * of its own that fetches /metrics pages and Redis INFO for the fleet builder
 * (which lives in the root namespace and cannot reach the fleet's addresses).
 * One JSON request per stdin line, `{"id", "url"}` or `{"id", "redis": "h:p"}`,
 * one JSON answer per stdout line, `{"id", "ok", "body"}`; every request is
 * bounded by TIMEOUT_MS, so a dead target answers `ok: false` quickly.
 */
import * as net from 'node:net';
import * as readline from 'node:readline';

const TIMEOUT_MS = 2_000;
/** An INFO reply is a few KiB; anything far larger is not Redis. */
const MAX_REPLY = 1 << 20;

export interface ProbeRequest {
  id: number;
  url?: string;
  redis?: string;
}

export interface ProbeAnswer {
  id: number;
  ok: boolean;
  body: string;
}

async function http(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.text();
}

/** `INFO stats` over RESP; resolves with the bulk string. */
function redisInfo(hostPort: string): Promise<string> {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i);
  const port = Number(hostPort.slice(i + 1));
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, body?: string): void => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(body ?? '');
    };
    const timer = setTimeout(() => done(new Error('timeout')), TIMEOUT_MS);
    s.once('error', (err) => done(err));
    s.once('connect', () => s.write('*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n'));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_REPLY) return done(new Error('reply too large'));
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const head = buf.subarray(0, eol).toString();
      if (head[0] !== '$') return done(new Error(`unexpected reply ${head.slice(0, 80)}`));
      const len = Number(head.slice(1));
      if (!(len >= 0 && len <= MAX_REPLY)) return done(new Error(`bad length ${head}`));
      if (buf.length >= eol + 2 + len) done(undefined, buf.subarray(eol + 2, eol + 2 + len).toString());
    });
  });
}

function main(): void {
  const out = (a: ProbeAnswer): void => void process.stdout.write(`${JSON.stringify(a)}\n`);
  readline.createInterface({ input: process.stdin, crlfDelay: Infinity }).on('line', (line) => {
    let req: ProbeRequest;
    try {
      req = JSON.parse(line) as ProbeRequest;
    } catch {
      return;
    }
    const work = req.url !== undefined ? http(req.url) : req.redis !== undefined ? redisInfo(req.redis) : Promise.reject(new Error('nothing asked'));
    work.then(
      (body) => out({ id: req.id, ok: true, body }),
      (err: unknown) => out({ id: req.id, ok: false, body: err instanceof Error ? err.message : String(err) }),
    );
  });
  // The fleet closes stdin when it is done (or gone): so does the probe.
  process.stdin.once('end', () => process.exit(0));
}

if (require.main === module) main();
