import { buildDiskImage, DiskLayout, maxKernelBytes, writeSparseFile } from '../../lib/disk-image';
import { pygrubBoot, pygrubEntries } from '../fixtures/pygrub';
import { debugfs, e2fsck, fakeKernel, fileEquals, makeTempDir, runTool, superblockFields } from './tools';

const KIB = 1024;
const MIB = 2 ** 20;
/** The writer uses 4 KiB blocks: 12 direct pointers, then 1024 pointers per indirect block. */
const BLOCK = 4 * KIB;
const LAST_DIRECT = 12 * BLOCK;
const LAST_SINGLE_INDIRECT = (12 + 1024) * BLOCK;

let temp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  temp = makeTempDir();
});
afterEach(() => temp.remove());

/** Writes the image of `kernel` and returns the file's path. */
function writeImage(kernel: Buffer, volumeSizeGiB = 1, kernelArgs = ''): string {
  const file = temp.path('disk.img');
  writeSparseFile(buildDiskImage({ kernel, name: 'hello', kernelArgs, volumeSizeGiB }), file);
  return file;
}

function expectCleanFsck(file: string): void {
  const fsck = e2fsck(file);
  expect({ status: fsck.status, stdout: fsck.stdout }).toEqual({ status: 0, stdout: expect.stringContaining('Pass 5') });
}

function expectKernelDumpEquals(file: string, kernel: Buffer): void {
  const out = temp.path('kernel.out');
  expect(debugfs(file, `dump /boot/hello.xen ${out}`).stderr).not.toMatch(/error|not found/i);
  expect(fileEquals(out, kernel)).toBe(true);
}

describe('kernel sizes across the block-pointer levels (1 GiB volume)', () => {
  test.each([
    ['1 byte', 1, []],
    ['12 blocks: the last size with direct pointers only', LAST_DIRECT, []],
    ['12 blocks + 1 byte: first size needing the indirect block', LAST_DIRECT + 1, ['(IND)']],
    ['1036 blocks: the last size within the indirect block', LAST_SINGLE_INDIRECT, ['(IND)']],
    ['1036 blocks + 1 byte: first size needing double-indirect', LAST_SINGLE_INDIRECT + 1, ['(IND)', '(DIND)']],
    ['256 MiB', 256 * MIB, ['(IND)', '(DIND)']],
  ])('%s (%d bytes): fsck clean, kernel byte-identical, right pointer levels', (_, size, levels) => {
    // GIVEN
    const kernel = fakeKernel(size);

    // WHEN
    const file = writeImage(kernel);

    // THEN
    expectCleanFsck(file);
    expectKernelDumpEquals(file, kernel);
    const stat = debugfs(file, 'stat /boot/hello.xen').stdout;
    expect(stat).toContain(`Size: ${size}`);
    for (const level of ['(IND)', '(DIND)', '(TIND)']) {
      expect({ level, used: stat.includes(level) }).toEqual({ level, used: levels.includes(level) });
    }
  });
});

describe('volume sizes', () => {
  test.each([
    [1, 16 * MIB],
    [5, 64 * MIB],
    [16, 256 * MIB],
  ])('%d GiB volume with a %d-byte kernel: fsck clean, every group in place', (volumeSizeGiB, size) => {
    const kernel = fakeKernel(size);

    const file = writeImage(kernel, volumeSizeGiB, 'console=hvc0');

    expectCleanFsck(file);
    expectKernelDumpEquals(file, kernel);
    const fields = superblockFields(file);
    expect(Number(fields.get('Block count')) * Number(fields.get('Block size'))).toBe(volumeSizeGiB * 2 ** 30);
  });

  test('a kernel of exactly maxKernelBytes fills the volume and is still clean', () => {
    // GIVEN mostly zero bytes (cheap to hold), with markers at both ends and in each 128 MiB group
    const size = maxKernelBytes(1, DiskLayout.WHOLE_VOLUME);
    const kernel = Buffer.alloc(size);
    for (let offset = 0; offset < size; offset += 128 * MIB) {
      kernel.write('marker', offset);
    }
    kernel[size - 1] = 0xff;

    const file = writeImage(kernel);

    expectCleanFsck(file);
    expect(superblockFields(file).get('Free blocks')).toBe('0');
    expectKernelDumpEquals(file, kernel);
    expect(() => buildDiskImage({ kernel: Buffer.alloc(size + 1), name: 'hello' })).toThrow(/raise volumeSizeGiB/);
  });
});

describe('filesystem format: what GRUB 0.97 reads', () => {
  test('revision 1, 128-byte inodes, 4 KiB blocks, only the filetype and sparse_super features', () => {
    const file = writeImage(fakeKernel(100 * KIB));

    const fields = superblockFields(file);

    expect(fields.get('Filesystem revision #')).toBe('1 (dynamic)');
    expect(fields.get('Inode size')).toBe('128');
    expect(fields.get('Block size')).toBe('4096');
    expect(fields.get('Filesystem features')).toBe('filetype sparse_super');
    expect(fields.get('Filesystem state')).toBe('clean');
  });

  test('backup superblocks in groups 0, 1 and powers of 3, 5, 7, each usable by e2fsck', () => {
    const file = writeImage(fakeKernel(1 * MIB), 16);

    // 16 GiB of 4 KiB blocks is 128 groups of 32768 blocks.
    const groupsWithSuperblock: number[] = [];
    let group = -1;
    for (const line of runTool('dumpe2fs', [file]).stdout.split('\n')) {
      group = Number(/^Group (\d+):/.exec(line)?.[1] ?? group);
      if (/(Primary|Backup) superblock at/.test(line)) {
        groupsWithSuperblock.push(group);
      }
    }

    expect(groupsWithSuperblock).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
    for (const backup of [1, 125]) {
      const fsck = runTool('e2fsck', ['-fn', '-b', String(backup * 32768), '-B', '4096', file]);
      expect({ backup, status: fsck.status }).toEqual({ backup, status: 0 });
    }
  });

  test('directories, lost+found and menu.lst as PV-GRUB expects them', () => {
    const kernel = fakeKernel(3 * KIB);
    const file = writeImage(kernel, 1, 'console=hvc0 -v');

    // Xen's pygrub reads the menu.lst from the disk and boots the kernel it names, with its arguments
    expect(pygrubEntries(file)).toEqual([{ title: 'hello', root: 'd0', kernel: '/boot/hello.xen', args: 'console=hvc0 -v' }]);
    const boot = pygrubBoot(file);
    expect(boot.args).toBe('console=hvc0 -v');
    expect(boot.kernel.equals(kernel)).toBe(true);
    expect(debugfs(file, 'ls -p /').stdout).toMatch(/\/11\/040755\/0\/0\/lost\+found\/\//);
    expect(debugfs(file, 'ls -p /boot').stdout).toMatch(/\/100644\/0\/0\/hello\.xen\/3072\//);
    expect(debugfs(file, 'stat /lost+found').stdout).toContain('Size: 16384');
  });
});
