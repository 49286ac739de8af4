import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostIdentities, lookupHostUser, parseIdLine } from './host-user';

test('id output: the name and every group name, primary first', () => {
  assert.deepEqual(parseIdLine('uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup),100(users)\n'), { name: 'nobody', groups: ['nogroup', 'users'] });
  assert.deepEqual(parseIdLine('uid=1000(alice) gid=1000(alice)'), { name: 'alice', groups: [] });
  assert.equal(parseIdLine('id: ‘+4321’: no such user'), undefined);
});

test('a user is named by unix-user:NAME and unix-group:G; a uid without a name by nothing', () => {
  assert.deepEqual(hostIdentities({ uid: 1, gid: 1, pid: 1, name: 'alice', groups: ['alice', 'staff'] }), ['unix-user:alice', 'unix-group:alice', 'unix-group:staff']);
  assert.deepEqual(hostIdentities({ uid: 4321, gid: 4321, pid: 1, name: undefined, groups: [] }), []);
});

test('lookupHostUser asks the user database by number: root is root, an unknown uid has no name', async () => {
  const root = await lookupHostUser({ uid: 0, gid: 0, pid: process.pid });
  assert.equal(root.name, 'root');
  assert.ok(root.groups.includes('root'));
  const none = await lookupHostUser({ uid: 4_000_000_123, gid: 0, pid: process.pid });
  assert.equal(none.name, undefined);
  assert.deepEqual(none.groups, []);
});
