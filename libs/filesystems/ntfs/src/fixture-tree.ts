/**
 * Test support: fills a read-write ntfs-3g mount with what a Windows guest
 * volume holds and what ntfs-3g itself creates: a Windows-like tree, many
 * files, a deep tree, a big directory (a multi-level $I30 B+ tree), hard
 * links, Interix symlinks and special files, Windows reparse points
 * (junctions, symlinks, other tags) through system.ntfs_reparse_data, DOS
 * names through system.ntfs_dos_name, ADS through user.* xattrs, sparse and
 * >4 GiB files, a runlist spilling into an attribute list, compressed files
 * (mounted with -o compression), Unicode names and odd timestamps.
 */
import * as fs from 'node:fs';
import path from 'node:path';
import { hasTool, patternBytes, reparseData, run, setWindowsAttributes, setXattr } from './fixture-image';

export interface FillOptions {
  /** Entries in big/ (thousands give a B+ tree with index blocks on several levels). */
  bigDir: number;
  /** Data islands in a sparse file (thousands spill its runlist into extension records). */
  fragments: number;
  /** Plain files of assorted sizes. */
  files: number;
  /** Depth of the deep/ chain. */
  depth: number;
  /** Whether the mount has -o compression (a directory marked compressed compresses new files). */
  compression: boolean;
}

const SIZES = [0, 1, 100, 700, 1000, 4095, 4096, 4097, 65536, 300_000, 1_048_577];

function write(file: string, data: Buffer | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
}

function writeAt(file: string, chunks: [number, Buffer][], size?: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'w');
  try {
    if (size !== undefined) fs.ftruncateSync(fd, size);
    for (const [at, data] of chunks) fs.writeSync(fd, data, 0, data.length, at);
  } finally {
    fs.closeSync(fd);
  }
}

export function fillTree(mnt: string, o: FillOptions): void {
  const p = (...parts: string[]): string => path.join(mnt, ...parts);

  // A Windows-like system volume (names and a little content).
  write(p('Windows/System32/config/SYSTEM'), patternBytes(40_000, 1));
  write(p('Windows/System32/config/SOFTWARE'), patternBytes(9000, 2));
  write(p('Windows/System32/drivers/etc/hosts'), '127.0.0.1 localhost\r\n');
  write(p('Windows/System32/kernel32.dll'), patternBytes(120_000, 3));
  write(p('Users/Public/Documents/desktop.ini'), '[.ShellClassInfo]\r\n');
  write(p('Program Files/Common Files/readme.txt'), 'x');
  fs.mkdirSync(p('Program Files (x86)'));
  fs.mkdirSync(p('ProgramData'));
  write(p('$Recycle.Bin/S-1-5-18/desktop.ini'), 'recycle');
  writeAt(p('pagefile.sys'), [[0, patternBytes(4096, 4)]], 64 * 1024 * 1024);

  for (let i = 0; i < o.files; i++) write(p('files', `dir${i % 7}`, `f${i}.bin`), patternBytes(SIZES[i % SIZES.length], 100 + i));

  let deep = p('deep');
  for (let i = 0; i < o.depth; i++) deep = path.join(deep, `level-${i}`);
  write(path.join(deep, 'leaf.txt'), 'deep');

  fs.mkdirSync(p('big'));
  for (let i = 0; i < o.bigDir; i++) {
    const name = p('big', `entry-${String(i).padStart(5, '0')}-${'abcdefghij'.repeat(1 + (i % 3))}`);
    if (i % 50 === 0) fs.mkdirSync(name);
    else fs.writeFileSync(name, i % 10 === 0 ? String(i) : '');
  }

  // Hard links, in one directory and across directories.
  write(p('links/original'), patternBytes(5000, 5));
  fs.linkSync(p('links/original'), p('links/second'));
  fs.mkdirSync(p('links/sub'));
  fs.linkSync(p('links/original'), p('links/sub/third'));

  // Symlinks as ntfs-3g creates them (Interix), and special files.
  fs.symlinkSync('original', p('links/rel'));
  fs.symlinkSync('/etc/passwd', p('links/abs'));
  fs.symlinkSync('no/such/target', p('links/dangling'));
  fs.symlinkSync('sub', p('links/to-dir'));
  fs.symlinkSync('ünï/κόσμε', p('links/unicode'));
  run('mknod', [p('special-fifo'), 'p']);
  run('mknod', [p('special-char'), 'c', '1', '3']);
  run('mknod', [p('special-block'), 'b', '8', '17']);
  run('mknod', [p('special-bigdev'), 'c', '300', '70000']);
  if (hasTool('python3')) run('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p('special-socket')]);

  // Windows reparse points (what a Windows guest's volume holds).
  const reparse = (name: string, dir: boolean, data: Buffer): void => {
    if (dir) fs.mkdirSync(p(name));
    else fs.writeFileSync(p(name), '');
    setXattr(p(name), 'system.ntfs_reparse_data', data);
  };
  reparse('junction-system32', true, reparseData.junction('\\??\\C:\\Windows\\System32'));
  reparse('junction-case', true, reparseData.junction('\\??\\c:\\WINDOWS\\system32\\CONFIG'));
  reparse('junction-other-drive', true, reparseData.junction('\\??\\D:\\Data'));
  reparse('junction-missing', true, reparseData.junction('\\??\\C:\\No\\Such\\Dir'));
  reparse('junction-volume', true, reparseData.junction('\\??\\Volume{01234567-89ab-cdef-0123-456789abcdef}\\'));
  reparse('junction-win32-volume', true, reparseData.junction('\\\\?\\Volume{01234567-89ab-cdef-0123-456789abcdef}\\'));
  reparse('symlink-absolute', false, reparseData.symlink('\\??\\C:\\Windows\\System32\\config\\SYSTEM', false));
  reparse('symlink-relative', false, reparseData.symlink('windows\\system32\\CONFIG\\system', true));
  reparse('symlink-rooted', false, reparseData.symlink('\\Windows\\System32\\kernel32.dll', true));
  reparse('symlink-drive', false, reparseData.symlink('C:\\Users', true));
  reparse('symlink-wrong-kind', false, reparseData.symlink('Windows\\System32', true));
  reparse('symlink-missing', false, reparseData.symlink('nothing\\here', true));
  reparse('symlink-dir', true, reparseData.symlink('..\\Windows\\.\\System32', true));
  fs.mkdirSync(p('Users/Public/Links'), { recursive: true });
  writeAt(p('Users/Public/Links/up'), [[0, Buffer.alloc(0)]]);
  setXattr(p('Users/Public/Links/up'), 'system.ntfs_reparse_data', reparseData.symlink('..\\..\\..\\Windows\\System32\\config\\SYSTEM', true));
  reparse('wsl-symlink', false, reparseData.wslSymlink('/usr/lib/os-release'));
  reparse('dedup-file', false, reparseData.other(0x80000013, patternBytes(40, 6)));
  reparse('cloud-file', false, reparseData.other(0x9000001a, patternBytes(24, 7)));
  reparse('third-party', false, reparseData.other(0x00001234, patternBytes(8, 8)));
  // Tags ntfs-3g routes to a plugin by their masked value (bits 12-15 ignored), which then wants the exact tag.
  reparse('cloud-variant', false, reparseData.other(0x9000101a, patternBytes(16, 15)));
  reparse('symlink-variant', false, reparseData.other(0xa000100c, patternBytes(20, 16)));
  reparse('wsl-variant', false, reparseData.other(0x80001024, patternBytes(4, 17)));
  fs.writeFileSync(p('wsl-variant-with-data'), patternBytes(9000, 18));
  setXattr(p('wsl-variant-with-data'), 'system.ntfs_reparse_data', reparseData.other(0x80001024, patternBytes(4, 19)));
  fs.writeFileSync(p('dedup-with-data'), patternBytes(9000, 20));
  setXattr(p('dedup-with-data'), 'system.ntfs_reparse_data', reparseData.other(0x80000013, patternBytes(4, 21)));

  // DOS 8.3 names beside long names (ntfs-3g lists only the long one).
  write(p('Long File Name.txt'), 'long');
  setXattr(p('Long File Name.txt'), 'system.ntfs_dos_name', Buffer.from('LONGFI~1.TXT'));
  write(p('README.TXT'), 'one name for Win32 and DOS');
  setXattr(p('README.TXT'), 'system.ntfs_dos_name', Buffer.from('README.TXT')); // namespace 3 (Win32 & DOS)
  fs.mkdirSync(p('Program Files/Windows Defender'));
  setXattr(p('Program Files/Windows Defender'), 'system.ntfs_dos_name', Buffer.from('WINDOW~1'));

  // Alternate data streams: resident and not, on a file, a directory, an empty file.
  write(p('streams/file.txt'), 'main data');
  setXattr(p('streams/file.txt'), 'user.Zone.Identifier', Buffer.from('[ZoneTransfer]\r\nZoneId=3\r\n'));
  setXattr(p('streams/file.txt'), 'user.big', patternBytes(20_000, 9));
  setXattr(p('streams/file.txt'), 'user.empty', Buffer.alloc(0));
  setXattr(p('streams'), 'user.on-a-dir', Buffer.from('dir stream'));
  write(p('streams/empty-main'), '');
  setXattr(p('streams/empty-main'), 'user.κλειδί', Buffer.from('unicode stream name'));

  // Sparse files, one past 4 GiB, and one whose runlist needs an attribute list.
  writeAt(p('sparse/holes'), [[0, patternBytes(10, 10)], [1 << 20, patternBytes(70_000, 11)], [(8 << 20) - 3, Buffer.from('end')]], 8 << 20);
  writeAt(p('sparse/huge'), [[0, Buffer.from('start')], [2 ** 32 - 1000, patternBytes(5000, 12)], [5 * 2 ** 30 - 10, Buffer.from('0123456789')]], 5 * 2 ** 30);
  writeAt(p('sparse/empty-5g'), [], 5 * 2 ** 30);
  const islands: [number, Buffer][] = [];
  for (let i = 0; i < o.fragments; i++) islands.push([i * 65536 + (i % 13), patternBytes(100, 1000 + i)]);
  writeAt(p('sparse/fragmented'), islands);

  // Compressed files (LZNT1): a directory marked compressed compresses what is created in it.
  fs.mkdirSync(p('compressed'));
  setWindowsAttributes(p('compressed'), 0x810);
  if (o.compression) {
    write(p('compressed/text.txt'), 'compress me, please; '.repeat(20_000));
    write(p('compressed/random.bin'), patternBytes(200_000, 13));
    const mixed: Buffer[] = [];
    for (let i = 0; i < 12; i++) mixed.push(patternBytes(30_000, 14 + i), Buffer.alloc(50_000, 0x41 + i));
    write(p('compressed/mixed.bin'), Buffer.concat(mixed));
    writeAt(p('compressed/sparse.bin'), [[100_000, Buffer.alloc(70_000, 0x5a)], [3_000_000, patternBytes(9000, 30)]], 4_000_000);
    write(p('compressed/tiny.txt'), 'tiny');
  }

  // Windows attributes that change what ntfs-3g shows.
  write(p('attrs/hidden.txt'), 'hidden');
  setWindowsAttributes(p('attrs/hidden.txt'), 0x22);
  write(p('attrs/system-data.bin'), 'not an Interix file, just system data');
  setWindowsAttributes(p('attrs/system-data.bin'), 0x24);
  write(p('attrs/system-hidden-empty'), '');
  setWindowsAttributes(p('attrs/system-hidden-empty'), 0x26);
  write(p('attrs/system-one-byte'), 'x');
  setWindowsAttributes(p('attrs/system-one-byte'), 0x24);
  write(p('attrs/readonly.txt'), 'ro');
  setWindowsAttributes(p('attrs/readonly.txt'), 0x21);
  fs.mkdirSync(p('attrs/system-dir'));
  write(p('attrs/system-dir/inside'), 'in a system directory');
  setWindowsAttributes(p('attrs/system-dir'), 0x14);

  // Names: Unicode, astral plane, case variants (POSIX namespace), long, odd.
  write(p('names/Ünïcode名前.txt'), 'u');
  write(p('names/😀 smile'), 'astral');
  write(p('names/File.txt'), 'upper');
  write(p('names/file.txt'), 'lower');
  write(p('names', 'n'.repeat(255)), 'long');
  write(p('names/.hidden-dot'), 'dot');
  write(p('names/trailing.dot.'), 'dot');
  write(p('names/with space '), 'space');
  // An unpaired UTF-16 surrogate: ntfs-3g takes and renders it as three bytes (ALLOW_BROKEN_UNICODE).
  fs.writeFileSync(Buffer.concat([Buffer.from(p('names/lone-')), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('-surrogate')]), 'lone');

  // Times: before 1970 with a fraction, far future, exact.
  write(p('times/1960'), 'a');
  fs.utimesSync(p('times/1960'), new Date('1960-06-01T12:00:00.5Z'), new Date('1960-06-01T12:00:00.25Z'));
  write(p('times/2200'), 'b');
  fs.utimesSync(p('times/2200'), new Date('2200-01-01T00:00:00Z'), new Date('2200-01-01T00:00:00.1234567Z'));
  write(p('times/epoch'), 'c');
  fs.utimesSync(p('times/epoch'), new Date(0), new Date(0));

  fs.mkdirSync(p('empty-dir'));
}
