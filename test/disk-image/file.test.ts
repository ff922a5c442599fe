import { existsSync, mkdirSync, statSync, truncateSync, writeFileSync } from 'fs';
import { buildDiskImage, DiskImageError, DiskLayout, maxKernelBytes, writeDiskImageFile, writeSparseFile } from '../../lib/disk-image';
import { cmp, debugfs, e2fsck, fakeKernel, fileEquals, makeTempDir } from './tools';

const MIB = 2 ** 20;

let temp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  temp = makeTempDir();
});
afterEach(() => temp.remove());

describe('writeDiskImageFile', () => {
  test.each([
    ['whole volume, 3 KiB kernel', DiskLayout.WHOLE_VOLUME, 1, 3000],
    ['whole volume, kernel across two block groups', DiskLayout.WHOLE_VOLUME, 1, 130 * MIB + 17],
    ['MBR, 5 MiB kernel', DiskLayout.MBR_PARTITION, 1, 5 * MIB + 3],
  ])('%s: the same bytes as buildDiskImage, and a clean filesystem holding the kernel', (_, layout, volumeSizeGiB, size) => {
    // GIVEN
    const kernel = fakeKernel(size);
    const kernelFile = temp.path('kernel.xen');
    writeFileSync(kernelFile, kernel);
    const settings = { name: 'hello', kernelArgs: 'console=hvc0', layout, volumeSizeGiB };

    // WHEN
    const plan = writeDiskImageFile(kernelFile, temp.path('streamed.img'), settings);

    // THEN cmp finds it identical to the in-memory writer's image
    writeSparseFile(buildDiskImage({ ...settings, kernel }), temp.path('in-memory.img'));
    expect(cmp(temp.path('streamed.img'), temp.path('in-memory.img'))).toBe(true);
    expect(statSync(temp.path('streamed.img')).size).toBe(volumeSizeGiB * 2 ** 30);
    expect(plan).toMatchObject({ kernelBytes: size, kernelPath: '/boot/hello.xen', layout, sizeBytes: volumeSizeGiB * 2 ** 30 });
    if (layout === DiskLayout.WHOLE_VOLUME) {
      const fsck = e2fsck(temp.path('streamed.img'));
      expect(fsck.status).toBe(0);
      debugfs(temp.path('streamed.img'), `dump /boot/hello.xen ${temp.path('dumped')}`);
      expect(fileEquals(temp.path('dumped'), kernel)).toBe(true);
    }
  });

  test("an all-zero MiB of the kernel stays a hole in the image, as mke2fs -d leaves it", () => {
    // GIVEN 8 MiB whose third MiB is zero (see fakeKernel)
    const kernel = fakeKernel(8 * MIB);
    const kernelFile = temp.path('kernel.xen');
    writeFileSync(kernelFile, kernel);

    // WHEN
    writeDiskImageFile(kernelFile, temp.path('disk.img'), { name: 'hello' });

    // THEN less is allocated than the kernel's size, and the kernel still reads back whole
    expect(statSync(temp.path('disk.img')).blocks * 512).toBeLessThan(kernel.length);
    debugfs(temp.path('disk.img'), `dump /boot/hello.xen ${temp.path('dumped')}`);
    expect(fileEquals(temp.path('dumped'), kernel)).toBe(true);
  });

  test('a kernel that does not fit: refused before the image file is created', () => {
    const kernelFile = temp.path('kernel.xen');
    writeFileSync(kernelFile, Buffer.alloc(0));
    const out = temp.path('disk.img');
    const tooLarge = temp.path('large.xen');
    writeFileSync(tooLarge, '');
    // A sparse file of one byte more than a 1 GiB volume holds.
    truncateSync(tooLarge, maxKernelBytes(1, DiskLayout.WHOLE_VOLUME) + 1);

    expect(() => writeDiskImageFile(tooLarge, out, { name: 'hello' })).toThrow(/holds a kernel of at most \d+ bytes: raise volumeSizeGiB/);
    expect(() => writeDiskImageFile(kernelFile, out, { name: 'hello' })).toThrow(/0 bytes long; give a kernel file that is not empty/);
    expect(existsSync(out)).toBe(false);
  });

  test('a directory is no kernel file; a missing one is a Node error naming it', () => {
    mkdirSync(temp.path('dir'));
    expect(() => writeDiskImageFile(temp.path('dir'), temp.path('disk.img'), { name: 'hello' })).toThrow(DiskImageError);
    expect(() => writeDiskImageFile(temp.path('missing.xen'), temp.path('disk.img'), { name: 'hello' })).toThrow(/ENOENT.*missing\.xen/);
    expect(existsSync(temp.path('disk.img'))).toBe(false);
  });
});
