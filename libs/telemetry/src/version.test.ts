import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildInfo, versionText } from './version';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tree(pkg: object): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-version-'));
  dirs.push(d);
  fs.writeFileSync(path.join(d, 'package.json'), JSON.stringify(pkg));
  return d;
}

test('this checkout: the root package.json version and, from .git, the commit git names', () => {
  const root = path.resolve(__dirname, '../../..');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const info = buildInfo();
  assert.equal(info.version, pkg.version);
  assert.equal(info.node, process.versions.node);
  let head: string | undefined;
  try {
    head = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    head = undefined;
  }
  // The commit is read once per process; a commit made since (another engineer) changes HEAD.
  if (head && fs.existsSync(path.join(root, '.git')) && info.commit) assert.match(info.commit, /^[0-9a-f]{12}$/);
  assert.match(versionText(info), new RegExp(`^${pkg.version.replace(/\./g, '\\.')} \\(`));
});

test('an installed tree: build-info.json names the commit; without it and without .git there is none', () => {
  const installed = tree({ name: 'strata', version: '9.8.7' });
  fs.writeFileSync(path.join(installed, 'build-info.json'), JSON.stringify({ commit: 'a'.repeat(40) }));
  assert.deepEqual(buildInfo(installed), { version: '9.8.7', commit: 'aaaaaaaaaaaa', node: process.versions.node });
  const bare = tree({ name: 'strata', version: '1.0.0' });
  assert.deepEqual(buildInfo(bare), { version: '1.0.0', node: process.versions.node });
  assert.equal(versionText(buildInfo(bare)), `1.0.0 (node ${process.versions.node})`);
});

test('a checkout: HEAD on a branch (loose or packed ref) or detached; odd files give no commit, never an error', () => {
  const repo = tree({ name: 'strata', version: '2.0.0' });
  const git = path.join(repo, '.git');
  fs.mkdirSync(path.join(git, 'refs/heads'), { recursive: true });
  fs.writeFileSync(path.join(git, 'HEAD'), 'ref: refs/heads/main\n');
  fs.writeFileSync(path.join(git, 'refs/heads/main'), `${'b'.repeat(40)}\n`);
  assert.equal(buildInfo(repo).commit, 'bbbbbbbbbbbb');
  fs.rmSync(path.join(git, 'refs/heads/main'));
  fs.writeFileSync(path.join(git, 'packed-refs'), `# pack-refs with: peeled\n${'c'.repeat(40)} refs/heads/main\n`);
  assert.equal(buildInfo(repo).commit, 'cccccccccccc');
  fs.writeFileSync(path.join(git, 'HEAD'), `${'d'.repeat(40)}\n`);
  assert.equal(buildInfo(repo).commit, 'dddddddddddd');
  fs.writeFileSync(path.join(git, 'HEAD'), 'ref: refs/../../etc/passwd\n');
  assert.equal(buildInfo(repo).commit, undefined);
  fs.writeFileSync(path.join(repo, 'package.json'), '{not json');
  assert.equal(buildInfo(repo).version, 'unknown');
});
