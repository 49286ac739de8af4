import { test } from 'node:test';
import assert from 'node:assert/strict';
import { entryKind, optionValue, parseFstab, parseVolumeSpec } from './fstab';
import { parseOsRelease } from './os-release';

test('fstab lines: comments, blank lines, octal escapes, missing fields default as mount(8) reads them', () => {
  const entries = parseFstab(['# comment', '', 'UUID=abc / xfs defaults 0 0', 'LABEL=My\\040Data /srv/my\\040data ext4', '  /dev/vda2\t/boot\text4\tro,nodev 1 2  ', 'onlyone'].join('\n'));
  assert.deepEqual(
    entries.map((e) => [e.spec, e.file, e.vfstype, e.options.join(','), e.line]),
    [
      ['UUID=abc', '/', 'xfs', 'defaults', 3],
      ['LABEL=My Data', '/srv/my data', 'ext4', 'defaults', 4],
      ['/dev/vda2', '/boot', 'ext4', 'ro,nodev', 5],
    ],
  );
  assert.equal(optionValue(['rw', 'subvol=@home', 'compress=zstd:1'], 'subvol'), '@home');
  assert.equal(optionValue(['rw'], 'subvol'), undefined);
});

test('volume specs: tags, by-links, mapper names with doubled dashes, VG/LV paths, disk partitions', () => {
  assert.deepEqual(parseVolumeSpec('UUID="1234-ABCD"'), { by: 'uuid', value: '1234-ABCD' });
  assert.deepEqual(parseVolumeSpec('PARTUUID=0fc63daf-0001'), { by: 'partuuid', value: '0fc63daf-0001' });
  assert.deepEqual(parseVolumeSpec('/dev/disk/by-label/EFI\\x20System'), { by: 'label', value: 'EFI System' });
  assert.deepEqual(parseVolumeSpec('/dev/mapper/rhel-root'), { by: 'lv', vg: 'rhel', lv: 'root' });
  assert.deepEqual(parseVolumeSpec('/dev/mapper/my--vg-lv--swap_1'), { by: 'lv', vg: 'my-vg', lv: 'lv-swap_1' });
  assert.deepEqual(parseVolumeSpec('/dev/ubuntu-vg/ubuntu-lv'), { by: 'lv', vg: 'ubuntu-vg', lv: 'ubuntu-lv' });
  assert.deepEqual(parseVolumeSpec('/dev/vda3'), { by: 'partition', number: 3 });
  assert.deepEqual(parseVolumeSpec('/dev/nvme0n1p2'), { by: 'partition', number: 2 });
  assert.deepEqual(parseVolumeSpec('/dev/sda'), { by: 'disk' });
  assert.deepEqual(parseVolumeSpec('/dev/md0'), { by: 'other', text: '/dev/md0' });
  assert.deepEqual(parseVolumeSpec('tmpfs'), { by: 'other', text: 'tmpfs' });
});

test('entry kinds: swap, bind, network and pseudo filesystems are not volumes of the disk', () => {
  const kind = (line: string): string => entryKind(parseFstab(line)[0]);
  assert.equal(kind('/dev/vda5 none swap sw 0 0'), 'swap');
  assert.equal(kind('/srv/a /srv/b none bind 0 0'), 'bind');
  assert.equal(kind('nas:/export /mnt nfs defaults 0 0'), 'elsewhere');
  assert.equal(kind('//server/share /mnt cifs user=x 0 0'), 'elsewhere');
  assert.equal(kind('proc /proc proc defaults 0 0'), 'elsewhere');
  assert.equal(kind('UUID=x /home ext4 defaults 0 2'), 'mount');
});

test('os-release: quoting and escapes as the shell reads them', () => {
  const f = parseOsRelease('NAME="Red Hat Enterprise Linux"\nID=rhel\nVERSION_ID="9.4"\nPRETTY_NAME=\'Plow\'\nX="a \\"quoted\\" \\$word"\n#C=1\nbad line\n');
  assert.equal(f.get('NAME'), 'Red Hat Enterprise Linux');
  assert.equal(f.get('ID'), 'rhel');
  assert.equal(f.get('VERSION_ID'), '9.4');
  assert.equal(f.get('PRETTY_NAME'), 'Plow');
  assert.equal(f.get('X'), 'a "quoted" $word');
  assert.equal(f.has('C'), false);
});
