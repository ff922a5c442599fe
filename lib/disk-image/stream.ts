/**
 * The disk image as a stream of blocks made as the kernel's bytes arrive: for the EBS direct
 * APIs and the helper's staged image, which take the disk a block at a time. Memory holds the
 * block being made, whatever the kernel's size.
 */
import { EBS_SNAPSHOT_BLOCK_BYTES } from '../pv-grub';
import { DiskImagePlan } from './layout';
import { DiskBlock, DiskImageError } from './types';
import { validateBlockSize } from './validation';

/** A region of the disk: metadata with its bytes, or kernel bytes still to come from the stream. */
type Piece =
  | { readonly start: number; readonly end: number; readonly data: Uint8Array }
  | { readonly start: number; readonly end: number; readonly data?: undefined };

/**
 * The blocks of `blockSize` bytes of the disk of `plan` that hold a non-zero byte, in ascending
 * order, each made when it is asked for from the next bytes of `kernel` (the kernel file's bytes
 * in order, in chunks of any size). Each block is a fresh buffer the consumer may keep.
 * @throws DiskImageError for a block size that does not divide the disk, or a kernel stream
 * shorter or longer than the size the disk was laid out for
 */
export async function* streamDiskBlocks(
  plan: DiskImagePlan,
  kernel: AsyncIterable<Uint8Array>,
  blockSize: number = EBS_SNAPSHOT_BLOCK_BYTES,
): AsyncGenerator<DiskBlock> {
  validateBlockSize(blockSize, plan.sizeBytes);
  const pieces: Piece[] = [
    ...plan.metadata.map(({ offset, data }) => ({ start: offset, end: offset + data.length, data })),
    ...plan.kernelRuns.map(({ diskOffset, length }) => ({ start: diskOffset, end: diskOffset + length })),
  ].sort((a, b) => a.start - b.start);
  const input = new KernelChunks(kernel, plan.kernelBytes);
  const zeros = Buffer.alloc(blockSize);
  let first = 0; // the first piece that does not end before the current block
  let index = -1;
  while (first < pieces.length) {
    index = Math.max(index + 1, Math.floor(pieces[first].start / blockSize));
    const blockStart = index * blockSize;
    const blockEnd = blockStart + blockSize;
    const block = Buffer.alloc(blockSize);
    for (let i = first; i < pieces.length && pieces[i].start < blockEnd; i++) {
      const piece = pieces[i];
      const from = Math.max(piece.start, blockStart);
      const to = Math.min(piece.end, blockEnd);
      if (to <= from) continue;
      if (piece.data) {
        block.set(piece.data.subarray(from - piece.start, to - piece.start), from - blockStart);
      } else {
        await input.readInto(block, from - blockStart, to - from);
      }
    }
    while (first < pieces.length && pieces[first].end <= blockEnd) {
      first++;
    }
    if (!block.equals(zeros)) {
      yield { index, data: block };
    }
  }
  await input.expectEnd();
}

/** The kernel's bytes read in order, exactly as many as the disk was laid out for. */
class KernelChunks {
  private readonly chunks: AsyncIterator<Uint8Array>;
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  private consumed = 0;

  constructor(kernel: AsyncIterable<Uint8Array>, private readonly expectedBytes: number) {
    this.chunks = kernel[Symbol.asyncIterator]();
  }

  async readInto(target: Uint8Array, offset: number, length: number): Promise<void> {
    while (length > 0) {
      if (this.at === this.chunk.length) {
        const next = await this.chunks.next();
        if (next.done) {
          throw new DiskImageError(
            `The kernel ended after ${this.consumed} bytes, but the disk was laid out for ${this.expectedBytes}: ` +
            'it changed or was cut short while it was read. Build again.',
          );
        }
        this.chunk = next.value;
        this.at = 0;
      }
      const take = Math.min(length, this.chunk.length - this.at);
      target.set(this.chunk.subarray(this.at, this.at + take), offset);
      this.at += take;
      this.consumed += take;
      offset += take;
      length -= take;
    }
  }

  async expectEnd(): Promise<void> {
    let extra = this.chunk.length - this.at;
    for (let next = await this.chunks.next(); !next.done; next = await this.chunks.next()) {
      extra += next.value.length;
    }
    if (extra > 0) {
      throw new DiskImageError(
        `The kernel has ${extra} bytes more than the ${this.expectedBytes} the disk was laid out for: it changed while it was read. Build again.`,
      );
    }
  }
}
