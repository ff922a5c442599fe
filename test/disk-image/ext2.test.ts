import { buildDiskImage, DiskLayout, maxKernelBytes, writeDiskImageFile, writeSparseFile } from '../../lib/disk-image';
import { statSync } from 'fs';
import { pygrubBoot, pygrubEntries } from '../fixtures/pygrub';
import { cmp, debugfs, e2fsck, extractRegion, fakeKernel, fileEquals, makeTempDir, runTool, scanNonZeroBlocks, superblockFields, writeSparseKernel } from './tools';

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
    [1, 16 * MIB, 1],
    [5, 64 * MIB, 1],
    [16, 256 * MIB, 3],
  ])('%d GiB volume with a %d-byte kernel: fsck clean, a filesystem of %d block group(s) at the start of the volume', (volumeSizeGiB, size, groups) => {
    const kernel = fakeKernel(size);

    const file = writeImage(kernel, volumeSizeGiB, 'console=hvc0');

    expectCleanFsck(file);
    expectKernelDumpEquals(file, kernel);
    const fields = superblockFields(file);
    expect(statSync(file).size).toBe(volumeSizeGiB * 2 ** 30);
    expect(Number(fields.get('Block count')) * Number(fields.get('Block size'))).toBe(groups * 128 * MIB);
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
    // GIVEN a kernel that fills 10 block groups: 1.2 GiB, mostly zero, written as a sparse file (cheap to make and copy)
    const kernelFile = temp.path('big.xen');
    writeSparseKernel(kernelFile, 1200 * MIB);
    const file = temp.path('disk.img');

    // WHEN
    writeDiskImageFile(kernelFile, file, { name: 'hello', volumeSizeGiB: 2 });

    // THEN 10 groups of 32768 4 KiB blocks, with superblocks where sparse_super puts them
    expect(Number(superblockFields(file).get('Block count'))).toBe(10 * 32768);
    expect(groupsWithSuperblock(file)).toEqual([0, 1, 3, 5, 7, 9]);
    for (const backup of [1, 9]) {
      const fsck = runTool('e2fsck', ['-fn', '-b', String(backup * 32768), '-B', '4096', file]);
      expect({ backup, status: fsck.status }).toEqual({ backup, status: 0 });
    }
    const out = temp.path('kernel.out');
    debugfs(file, `dump /boot/hello.xen ${out}`);
    expect(cmp(out, kernelFile)).toBe(true);
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

describe('a filesystem no larger than its files need, on a volume of the size asked for', () => {
  const EBS_BLOCK = 512 * KIB;

  /** The fewest 512 KiB blocks that can hold the kernel's bytes next to at least one block of metadata. */
  function fewestBlocks(kernelBytes: number): number {
    return Math.floor(kernelBytes / EBS_BLOCK) + 1;
  }

  test.each([
    [DiskLayout.WHOLE_VOLUME, 1 * MIB, 0],
    [DiskLayout.WHOLE_VOLUME, 16 * MIB + 5, 0],
    [DiskLayout.WHOLE_VOLUME, 300 * MIB, 0],
    // The MBR sits alone in the volume's first 512 KiB block: the partition starts at 1 MiB.
    [DiskLayout.MBR_PARTITION, 1 * MIB, 1],
    [DiskLayout.MBR_PARTITION, 64 * MIB, 1],
  ])('%s layout, %d-byte kernel: the non-zero 512 KiB blocks are the kernel\'s and one more (plus %d for the MBR)', (layout, size, mbrBlocks) => {
    // GIVEN
    const kernel = fakeKernel(size);
    if (size > 3 * MIB) {
      kernel.fill(0x5a, 2 * MIB, 3 * MIB); // no zero stretch (see fakeKernel): every kernel block is sent
    }

    // WHEN
    const image = buildDiskImage({ kernel, name: 'hello', layout, volumeSizeGiB: 2 });
    const file = temp.path('disk.img');
    writeSparseFile(image, file);

    // THEN e2fsck finds the filesystem clean, and an independent scan of the file finds no more blocks than that
    expect(e2fsck(layout === DiskLayout.WHOLE_VOLUME ? file : partitionOf(file)).status).toBe(0);
    expect(scanNonZeroBlocks(file, EBS_BLOCK).size).toBeLessThanOrEqual(fewestBlocks(size) + mbrBlocks);
    expect([...image.nonZeroBlocks()].length).toBeLessThanOrEqual(fewestBlocks(size) + mbrBlocks);
  });

  test.each([
    [1 * MIB, 1],
    [128 * MIB - 256 * KIB, 1],
    [128 * MIB, 2],
    [300 * MIB, 3],
  ])('a %d-byte kernel gets a filesystem of %d whole 128 MiB block group(s); the volume keeps its size', (size, groups) => {
    const image = buildDiskImage({ kernel: fakeKernel(size), name: 'hello', volumeSizeGiB: 2 });
    const file = temp.path('disk.img');
    writeSparseFile(image, file);

    const fields = superblockFields(file);
    expect(Number(fields.get('Block count'))).toBe(groups * 32768);
    expect(statSync(file).size).toBe(2 * 2 ** 30);
    expectCleanFsck(file);
  });

  test('resize2fs grows the filesystem to the whole volume, and the kernel is still there', () => {
    // GIVEN a 16 GiB volume whose filesystem holds a 3 MiB kernel
    const kernel = fakeKernel(3 * MIB);
    const file = writeImage(kernel, 16);

    // WHEN the user grows the filesystem, as the README says
    const resize = runTool('resize2fs', [file]);

    // THEN it spans the volume, with a backup superblock where sparse_super puts one, and nothing was lost
    expect({ status: resize.status, stderr: resize.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    expect(Number(superblockFields(file).get('Block count'))).toBe((16 * 2 ** 30) / BLOCK);
    expectCleanFsck(file);
    expectKernelDumpEquals(file, kernel);
    expect(groupsWithSuperblock(file)).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
  });
});

/** The groups that dumpe2fs lists with a primary or backup superblock. */
function groupsWithSuperblock(file: string): number[] {
  const groups: number[] = [];
  let group = -1;
  for (const line of runTool('dumpe2fs', [file]).stdout.split('\n')) {
    group = Number(/^Group (\d+):/.exec(line)?.[1] ?? group);
    if (/(Primary|Backup) superblock at/.test(line)) {
      groups.push(group);
    }
  }
  return groups;
}

/** The first partition of an MBR disk image, copied out as its own (sparse) file. */
function partitionOf(disk: string): string {
  const partition = temp.path('partition.img');
  extractRegion(disk, partition, 2048 * 512, statSync(disk).size - 2048 * 512);
  return partition;
}
