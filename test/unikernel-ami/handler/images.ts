/**
 * Disk images as the handler's build steps meet them: handed out block by block as a streamed image
 * is (staging.ts and ebs-direct.ts take that), and what staging makes of one (blocks.gz and
 * manifest.txt), checked against an independent build of the image.
 */
import { createHash } from 'crypto';
import { gunzipSync } from 'zlib';
import { DiskBlock, DiskImage } from '../../../lib/disk-image';

export interface StreamedOptions {
  /** After this many blocks, the stream breaks with `failure` instead of making the next one. @default never */
  readonly failAfter?: number;
  /** The message of the error the stream breaks with. */
  readonly failure?: string;
  /** Called with the count of blocks made so far, as each is handed out. */
  readonly onBlock?: (made: number) => void;
}

/**
 * The image's blocks handed out asynchronously, one event-loop turn apart, as the handler's image
 * read from the kernel object hands them out; the bytes are those of `image`.
 */
export function streamed(image: DiskImage, options: StreamedOptions = {}): { readonly sizeBytes: number; nonZeroBlocks(blockSize?: number): AsyncIterable<DiskBlock> } {
  return {
    sizeBytes: image.sizeBytes,
    async *nonZeroBlocks(blockSize?: number): AsyncIterable<DiskBlock> {
      let made = 0;
      for (const block of image.nonZeroBlocks(blockSize)) {
        if (made === options.failAfter) {
          throw new Error(options.failure ?? `The block stream broke after ${made} blocks`);
        }
        await new Promise((resolve) => setImmediate(resolve));
        made++;
        options.onBlock?.(made);
        yield block;
      }
    },
  };
}

/**
 * blocks.gz holds, in index order, the 512 KiB non-zero blocks of `image`, and manifest.txt its
 * header line (for a volume of `volumeBytes`) and one `index sha256` line per block, nothing more.
 * Returns the number of blocks.
 */
export function expectStagedBlocks(blocksGz: Uint8Array, manifest: string, image: DiskImage, volumeBytes: number): number {
  const block = 512 * 1024;
  const blocks = gunzipSync(blocksGz);
  const lines = manifest.trimEnd().split('\n');
  const expected = [...image.nonZeroBlocks(block)];
  expect(blocks.length).toBe(expected.length * block);
  expected.forEach((want, n) => {
    expect(blocks.subarray(n * block, (n + 1) * block).equals(Buffer.from(want.data))).toBe(true);
    expect(lines[n + 1]).toBe(`${want.index} ${createHash('sha256').update(want.data).digest('hex')}`);
  });
  expect(lines[0]).toBe(`mirage-unikernel-ami-manifest volume-bytes=${volumeBytes} block-bytes=${block} blocks=${expected.length}`);
  expect(lines).toHaveLength(expected.length + 1);
  return expected.length;
}
