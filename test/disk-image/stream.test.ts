import { buildDiskImage, DiskLayout, planDiskImage, streamDiskBlocks, writeSparseFile } from '../../lib/disk-image';
import { blockDigests, fakeKernel, makeTempDir, scanNonZeroBlocks } from './tools';

const MIB = 2 ** 20;

let temp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  temp = makeTempDir();
});
afterEach(() => temp.remove());

/** The kernel as a stream of chunks of `chunkBytes` (the last one shorter). */
async function* chunksOf(kernel: Uint8Array, chunkBytes: number): AsyncIterable<Uint8Array> {
  for (let at = 0; at < kernel.length; at += chunkBytes) {
    yield kernel.subarray(at, at + chunkBytes);
  }
}

describe('streamDiskBlocks', () => {
  test.each([
    ['whole volume, small kernel, one chunk', DiskLayout.WHOLE_VOLUME, 1, 70_000, 1 * MIB, 512 * 1024],
    ['whole volume, kernel with a zero stretch, odd chunks', DiskLayout.WHOLE_VOLUME, 1, 20 * MIB + 123, 77_777, 512 * 1024],
    ['MBR, kernel across block groups, 64 KiB disk blocks', DiskLayout.MBR_PARTITION, 2, 130 * MIB + 1, 1 * MIB + 3, 65536],
  ])('%s: exactly the non-zero blocks of the written image file', async (_, layout, volumeSizeGiB, size, chunkBytes, blockSize) => {
    // GIVEN
    const kernel = fakeKernel(size);
    const settings = { name: 'hello', kernelArgs: 'console=hvc0', layout, volumeSizeGiB };
    const file = temp.path('disk.img');
    writeSparseFile(buildDiskImage({ ...settings, kernel }), file);

    // WHEN
    const streamed = await blockDigests(streamDiskBlocks(planDiskImage(size, settings), chunksOf(kernel, chunkBytes), blockSize));

    // THEN the same blocks, with the same bytes, as an independent scan of the file
    expect(streamed).toEqual(scanNonZeroBlocks(file, blockSize));
  });

  test('a kernel stream shorter or longer than the size the disk was laid out for is an error, not a disk', async () => {
    const kernel = fakeKernel(3 * MIB);
    const plan = planDiskImage(kernel.length, { name: 'hello' });

    await expect(blockDigests(streamDiskBlocks(plan, chunksOf(kernel.subarray(0, kernel.length - 1), MIB)))).rejects.toThrow(
      /The kernel ended after 3145727 bytes, but the disk was laid out for 3145728/,
    );
    await expect(blockDigests(streamDiskBlocks(plan, chunksOf(Buffer.concat([kernel, Buffer.from('x')]), MIB)))).rejects.toThrow(
      /The kernel has 1 bytes more than the 3145728/,
    );
  });

  test('a block size that does not divide the disk is refused', async () => {
    const plan = planDiskImage(10, { name: 'hello' });
    await expect(blockDigests(streamDiskBlocks(plan, chunksOf(fakeKernel(10), 10), 3000))).rejects.toThrow(/Invalid block size 3000/);
  });
});
