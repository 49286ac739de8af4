import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isStrataError } from '@strata/errors';
import { peerCredentials, socketPeer, type PeerCredentials } from './peer-cred';
import { within } from './mount-harness';

/** A unix server that reports the credentials of its first connection. */
async function firstPeer(connect: (socketPath: string) => void): Promise<PeerCredentials> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-peercred-'));
  fs.chmodSync(dir, 0o755);
  const socketPath = path.join(dir, 's');
  try {
    let server: net.Server | undefined;
    const first = new Promise<PeerCredentials>((resolve, reject) => {
      const srv = (server = net.createServer((sock) => {
        try {
          resolve(socketPeer(sock));
        } catch (err) {
          reject(err);
        }
        sock.destroy();
        srv.close();
      }));
      srv.listen(socketPath, () => {
        fs.chmodSync(socketPath, 0o777);
        connect(socketPath);
      });
    });
    return await within(first, 20_000, 'the first connection to the socket').finally(() => server?.close());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the peer of a connection from this process is this process', async () => {
  let client: net.Socket | undefined;
  const peer = await firstPeer((p) => (client = net.connect(p)));
  client?.destroy();
  assert.deepEqual(peer, { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
});

test('a process running as another user is seen as that user, whatever it sends', { skip: process.getuid?.() === 0 ? false : 'needs root (setpriv)' }, async () => {
  let child: ReturnType<typeof spawn> | undefined;
  const peer = await firstPeer((p) => {
    const script = `const s = require('net').connect(${JSON.stringify(p)}); s.on('connect', () => s.write('{"uid":0}\\n')); s.on('error', () => {}); setTimeout(() => {}, 2000);`;
    child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { stdio: 'ignore' });
  });
  assert.equal(peer.uid, 65534);
  assert.equal(peer.gid, 65534);
  assert.equal(peer.pid, child?.pid);
  child?.kill();
});

test('a descriptor that is not a socket: the errno (ENOTSOCK) on a StrataError', () => {
  const fd = fs.openSync(__filename, 'r');
  try {
    assert.throws(() => peerCredentials(fd), (err: unknown) => isStrataError(err) && err.errno === 88 /* ENOTSOCK */);
  } finally {
    fs.closeSync(fd);
  }
});
