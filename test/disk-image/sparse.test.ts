import { createHash } from 'crypto';
import { buildDiskImage, DiskImage, DiskImageError, DiskLayout, writeSparseFile } from '../../lib/disk-image';
import { countNonZeroBytesOfFile, fakeKernel, makeTempDir, scanNonZeroBlocks, superblockFields } from './tools';

const MIB = 2 ** 20;
const EBS_BLOCK = 512 * 1024;

let temp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  temp = makeTempDir();
});
afterEach(() => temp.remove());

function digestsOfBlocks(image: DiskImage, blockSize?: number): Map<number, string> {
  const digests = new Map<number, string>();
  for (const block of image.nonZeroBlocks(blockSize)) {
    expect(block.data.length).toBe(blockSize ?? EBS_BLOCK);
    digests.set(block.index, createHash('sha256').update(block.data).digest('hex'));
  }
  return digests;
}

describe('nonZeroBlocks yields exactly the non-zero blocks of the written file', () => {
  test.each([
    ['whole volume, 1 GiB, kernel with a zero stretch', DiskLayout.WHOLE_VOLUME, 1, 20 * MIB + 123, EBS_BLOCK],
    ['MBR, 3 GiB, small kernel', DiskLayout.MBR_PARTITION, 3, 70_000, EBS_BLOCK],
    ['MBR, 16 GiB, kernel across groups', DiskLayout.MBR_PARTITION, 16, 300 * MIB + 1, EBS_BLOCK],
    ['whole volume, 4 KiB blocks', DiskLayout.WHOLE_VOLUME, 2, 5 * MIB + 7, 4096],
    ['whole volume, 1 MiB blocks', DiskLayout.WHOLE_VOLUME, 2, 5 * MIB + 7, MIB],
  ])('%s', (_, layout, volumeSizeGiB, kernelBytes, blockSize) => {
    // GIVEN
    const kernel = fakeKernel(kernelBytes);
    const image = buildDiskImage({ kernel, name: 'hello', layout, volumeSizeGiB });
    const file = temp.path('disk.img');
    writeSparseFile(image, file);

    // WHEN
    const yielded = digestsOfBlocks(image, blockSize === EBS_BLOCK ? undefined : blockSize);

    // THEN the same blocks, with the same bytes, as an independent scan of the file
    const scanned = scanNonZeroBlocks(file, blockSize);
    expect([...yielded.keys()]).toEqual([...scanned.keys()]);
    expect(yielded).toEqual(scanned);
    const zeroBlock = blockInsideKernelZeroStretch(image, kernel, blockSize);
    if (kernelBytes > 4 * MIB && blockSize <= EBS_BLOCK) {
      expect(zeroBlock).toBeDefined();
    }
    if (zeroBlock !== undefined) {
      expect(scanned.has(zeroBlock - 1) && !scanned.has(zeroBlock)).toBe(true);
    }
  });

  test('a block size that does not divide the disk is refused', () => {
    const image = buildDiskImage({ kernel: fakeKernel(10), name: 'hello' });

    expect(() => image.nonZeroBlocks(3000)).toThrow(DiskImageError);
    expect(() => [...image.nonZeroBlocks(3000)]).toThrow(/Invalid block size 3000: .*divides the disk size 1073741824/);
  });
});

/** A disk block lying wholly in the kernel's zero-filled MiB at kernel offset 2 MiB (see fakeKernel), if there is one. */
function blockInsideKernelZeroStretch(image: DiskImage, kernel: Buffer, blockSize: number): number | undefined {
  for (const { offset, data } of image.extents) {
    const kernelOffset = data.byteOffset - kernel.byteOffset;
    if (data.buffer === kernel.buffer && kernelOffset <= 2 * MIB && kernelOffset + data.length >= 3 * MIB) {
      const zeroStart = offset + 2 * MIB - kernelOffset;
      const index = Math.ceil(zeroStart / blockSize);
      return (index + 1) * blockSize <= zeroStart + MIB ? index : undefined;
    }
  }
  return undefined;
}

describe('extents and nonZeroBytes', () => {
  test('extents are sorted, non-overlapping and inside the disk; nonZeroBytes matches an independent count of the file', () => {
    const image = buildDiskImage({ kernel: fakeKernel(3 * MIB + 5), name: 'hello', layout: DiskLayout.MBR_PARTITION, volumeSizeGiB: 2 });
    const file = temp.path('disk.img');
    writeSparseFile(image, file);

    image.extents.forEach((extent, i) => {
      expect(extent.data.length).toBeGreaterThan(0);
      if (i > 0) {
        const previous = image.extents[i - 1];
        expect(extent.offset).toBeGreaterThanOrEqual(previous.offset + previous.data.length);
      }
    });
    const last = image.extents[image.extents.length - 1];
    expect(last.offset + last.data.length).toBeLessThanOrEqual(image.sizeBytes);
    expect(image.nonZeroBytes).toBe(countNonZeroBytesOfFile(file));
  });
});

describe('determinism', () => {
  test('the same inputs give identical bytes; another name gives another filesystem UUID', () => {
    const options = { name: 'hello', kernelArgs: 'console=hvc0', volumeSizeGiB: 2 };
    const first = buildDiskImage({ ...options, kernel: fakeKernel(2 * MIB) });
    const second = buildDiskImage({ ...options, kernel: Buffer.from(fakeKernel(2 * MIB)) });
    const renamed = buildDiskImage({ ...options, kernel: fakeKernel(2 * MIB), name: 'hello2' });
    const files = ['first', 'second', 'renamed'].map((name) => temp.path(name));
    [first, second, renamed].forEach((image, i) => writeSparseFile(image, files[i]));

    const digest = (file: string) => createHash('sha256').update(JSON.stringify([...scanNonZeroBlocks(file, EBS_BLOCK)])).digest('hex');
    expect(digest(files[0])).toBe(digest(files[1]));
    expect(digestsOfBlocks(first)).toEqual(digestsOfBlocks(second));
    const uuid = (file: string) => superblockFields(file).get('Filesystem UUID');
    expect(uuid(files[0])).toBe(uuid(files[1]));
    expect(uuid(files[0])).not.toBe(uuid(files[2]));
    expect(uuid(files[0])).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('memory', () => {
  test('a 16 GiB volume references the kernel instead of copying it and allocates nothing of the volume size', () => {
    // GIVEN
    const kernel = fakeKernel(64 * MIB);
    const before = process.memoryUsage().arrayBuffers;

    // WHEN
    const image = buildDiskImage({ kernel, name: 'hello', volumeSizeGiB: 16 });
    const afterBuild = process.memoryUsage().arrayBuffers;
    let peak = afterBuild;
    let blocks = 0;
    for (const block of image.nonZeroBlocks()) {
      blocks += block.data.length > 0 ? 1 : 0;
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }

    // THEN the kernel's bytes are views of the caller's buffer, and memory stays far below the volume size
    const kernelViews = image.extents.filter((extent) => extent.data.buffer === kernel.buffer);
    expect(kernelViews.reduce((sum, extent) => sum + extent.data.length, 0)).toBe(kernel.length);
    expect(afterBuild - before).toBeLessThan(kernel.length / 4);
    expect(peak - before).toBeLessThan(2 * kernel.length + 128 * MIB);
    expect(blocks).toBeGreaterThanOrEqual(kernel.length / EBS_BLOCK - 2);
  });
});
