/**
 * The initramfs archive writer, read back with busybox's cpio (Debian package busybox-static),
 * the same implementation family that dom0 runs, and checked against what the kernel's unpacker needs.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gunzipSync } from 'zlib';
import { CpioArchive } from '../../lib/xen/cpio';

function busyboxCpio(args: string[], input: Buffer, cwd: string): string {
  const result = spawnSync('/bin/busybox', ['cpio', ...args], { input, cwd, encoding: 'utf8' });
  if (result.error) {
    throw new Error(`Cannot run /bin/busybox (${result.error.message}); install the Debian package busybox-static`);
  }
  expect(result.stderr).toMatch(/^\d+ blocks\n$/); // busybox reports the size and nothing else when all went well
  expect(result.status).toBe(0);
  return result.stdout;
}

let workDir: string;
beforeEach(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-cpio-'));
});
afterEach(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

function sampleArchive(): CpioArchive {
  const source = path.join(workDir, 'source.bin');
  fs.writeFileSync(source, Buffer.from([0, 1, 2, 3, 4, 5, 6]));
  return new CpioArchive()
    .file('/init', '#!/bin/sh\necho hi\n', 0o755)
    .file('usr/lib/odd', 'abc') // 3 bytes: data padding
    .file('/usr/lib/modules/mua/load-order', 'a\nb\n')
    .fileFrom('/usr/share/copied.bin', source, 0o100640, 1_700_000_000)
    .directory('/var/empty', 0o700)
    .symlink('/lib', 'usr/lib')
    .symlink('/var/run', '../run');
}

test('busybox cpio unpacks every entry of the gzip archive with its contents, mode and link target', async () => {
  const file = path.join(workDir, 'archive.cpio.gz');
  await sampleArchive().writeGzip(file);
  const archive = gunzipSync(fs.readFileSync(file));
  const out = path.join(workDir, 'out');
  fs.mkdirSync(out);

  busyboxCpio(['-i', '-d', '-m'], archive, out);

  expect(fs.readFileSync(path.join(out, 'init'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
  expect(fs.statSync(path.join(out, 'init')).mode & 0o7777).toBe(0o755);
  expect(fs.readFileSync(path.join(out, 'usr/lib/odd'), 'utf8')).toBe('abc');
  expect(fs.readFileSync(path.join(out, 'usr/lib/modules/mua/load-order'), 'utf8')).toBe('a\nb\n');
  expect([...fs.readFileSync(path.join(out, 'usr/share/copied.bin'))]).toEqual([0, 1, 2, 3, 4, 5, 6]);
  expect(fs.statSync(path.join(out, 'usr/share/copied.bin')).mode & 0o7777).toBe(0o640);
  expect(fs.statSync(path.join(out, 'usr/share/copied.bin')).mtimeMs).toBe(1_700_000_000_000);
  expect(fs.statSync(path.join(out, 'var/empty')).mode & 0o7777).toBe(0o700);
  expect(fs.readlinkSync(path.join(out, 'lib'))).toBe('usr/lib');
  expect(fs.readFileSync(path.join(out, 'lib/odd'), 'utf8')).toBe('abc');
  expect(fs.readlinkSync(path.join(out, 'var/run'))).toBe('../run');
});

test('parents come before children and links come last, as the kernel unpacks in order without creating directories', () => {
  const listing = busyboxCpio(['-t'], sampleArchive().toBuffer(), workDir).trim().split('\n');
  expect(listing).toEqual([
    'init', 'usr', 'usr/lib', 'usr/lib/modules', 'usr/lib/modules/mua', 'usr/lib/modules/mua/load-order', 'usr/lib/odd',
    'usr/share', 'usr/share/copied.bin', 'var', 'var/empty', 'lib', 'var/run',
  ]);
});

test('an archive is a multiple of 4 bytes and ends with the trailer, so archives can be concatenated', () => {
  const bytes = sampleArchive().toBuffer();
  expect(bytes.length % 4).toBe(0);
  expect(bytes.subarray(0, 6).toString()).toBe('070701');
  expect(bytes.toString('latin1')).toMatch(/TRAILER!!!\0+$/);
});

test('refuses an entry that would be unpacked through a link, or a link where a directory is', () => {
  expect(() => new CpioArchive().symlink('/lib', 'usr/lib').file('/lib/libc.so.6', 'x')).toThrow(/through the symbolic link lib/);
  expect(() => new CpioArchive().file('/lib/libc.so.6', 'x').symlink('/lib', 'usr/lib')).toThrow(/already in the archive/);
});
