// The suite's runner: every compiled *.test.js of the libraries, services
// and test/, handed to `node --test` by name. Node 20 searches a directory
// given to --test, Node 22+ reads each argument as a file or glob (a
// directory would load only its index.js and run nothing), so the files are
// listed here for both. Options after the script go to node --test;
// STRATA_TEST_LIST=1 prints the files instead of running them.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const roots = [];
for (const group of ['libs', 'services']) {
  for (const name of readdirSync(join(root, group))) {
    const dir = join(root, group, name);
    if (!statSync(dir).isDirectory()) continue;
    roots.push(join(dir, 'dist'));
    // libs/containers, libs/volumes, libs/filesystems: one package per format inside.
    for (const inner of readdirSync(dir)) {
      const sub = join(dir, inner);
      if (inner !== 'dist' && inner !== 'node_modules' && statSync(sub).isDirectory()) roots.push(join(sub, 'dist'));
    }
  }
}
roots.push(join(root, 'test', 'dist'));

const files = [];
const walk = (dir) => {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name !== 'node_modules') walk(p);
    else if (e.isFile() && e.name.endsWith('.test.js')) files.push(p);
  }
};
for (const r of roots) walk(r);
files.sort();
if (files.length === 0) {
  console.error('test/run.mjs: no compiled tests found (run the build first)');
  process.exit(1);
}
if (process.env.STRATA_TEST_LIST) { console.log(files.join('\n')); process.exit(0); }
const child = spawn(process.execPath, ['--test', ...process.argv.slice(2), ...files], { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => child.kill(s));
