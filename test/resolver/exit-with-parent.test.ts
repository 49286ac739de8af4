import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO, processAlive, waitFor } from '@strata/harness';

/**
 * Services started by a launcher that asked for it (the demo) stop when the
 * launcher dies, however it dies: here it is SIGKILLed, which no signal
 * handler of its own can turn into an orderly stop of its children.
 */
test('a resolver started with exitWithParent stops cleanly when its launcher is SIGKILLed', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-lifeline-'));
  const launcher = path.join(work, 'launcher.js');
  const log = path.join(work, 'resolver.log');
  fs.mkdirSync(path.join(work, 'store'));
  fs.writeFileSync(
    launcher,
    `const { StrataProcess } = require(${JSON.stringify(path.join(REPO, 'libs/launcher/dist'))});
const p = new StrataProcess({ role: 'resolver', args: ['--store', ${JSON.stringify(path.join(work, 'store'))}, '--listen', '127.0.0.1:0'], logFile: ${JSON.stringify(log)}, detached: true, exitWithParent: true });
p.waitForEvent('resolver.listening', 30000).then(() => process.stdout.write(String(p.pid) + '\\n'));
setInterval(() => {}, 1000);
`,
  );
  const parent = spawn(process.execPath, [launcher], { stdio: ['ignore', 'pipe', 'inherit'] });
  let child = 0;
  try {
    let out = '';
    parent.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child = await waitFor('the resolver pid', () => (/^\d+\n/.test(out) ? Number(out.trim()) : undefined), 30_000);
    assert.ok(processAlive(child));
    // The launcher copies the resolver's lines into the log file as they come: wait (bounded) until the ready line is there before killing it.
    await waitFor('the ready line in the log file', () => (fs.existsSync(log) && /"event":"resolver.listening"/.test(fs.readFileSync(log, 'utf8')) ? true : undefined), 10_000);
    parent.kill('SIGKILL');
    await waitFor('the resolver to stop with its launcher', () => (!processAlive(child) ? true : undefined), 10_000);
    const lines = fs.readFileSync(log, 'utf8');
    assert.match(lines, /"event":"resolver.listening"/);
  } finally {
    if (parent.exitCode === null) parent.kill('SIGKILL');
    if (child) {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        // Already gone, as it should be.
      }
    }
    fs.rmSync(work, { recursive: true, force: true });
  }
});
