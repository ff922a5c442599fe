import { EBS_SNAPSHOT_BLOCK_BYTES } from '../pv-grub';
import { DiskBlock, DiskExtent } from './types';
import { validateBlockSize } from './validation';

/**
 * The blocks of `blockSize` bytes that hold a non-zero byte, in ascending order, made one at a time.
 * A block inside one extent is a view of that extent's bytes (for the kernel: of the caller's buffer);
 * only blocks that straddle extents or gaps are assembled in a fresh buffer.
 */
export function nonZeroBlocks(
  extents: readonly DiskExtent[],
  sizeBytes: number,
  blockSize: number = EBS_SNAPSHOT_BLOCK_BYTES,
): Iterable<DiskBlock> {
  validateBlockSize(blockSize, sizeBytes);
  return generateNonZeroBlocks(extents, blockSize);
}

function* generateNonZeroBlocks(extents: readonly DiskExtent[], blockSize: number): Iterable<DiskBlock> {
  const zeros = Buffer.alloc(blockSize);
  let first = 0; // the first extent that does not end before the current block
  let index = -1;
  while (first < extents.length) {
    index = Math.max(index + 1, Math.floor(extents[first].offset / blockSize));
    const start = index * blockSize;
    const end = start + blockSize;
    let last = first;
    while (last + 1 < extents.length && extents[last + 1].offset < end) {
      last++;
    }
    const data = blockData(extents, first, last, start, blockSize);
    if (!Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(zeros)) {
      yield { index, data };
    }
    while (first < extents.length && extentEnd(extents[first]) <= end) {
      first++;
    }
  }
}

function blockData(extents: readonly DiskExtent[], first: number, last: number, start: number, blockSize: number): Uint8Array {
  const only = extents[first];
  if (first === last && only.offset <= start && extentEnd(only) >= start + blockSize) {
    return only.data.subarray(start - only.offset, start - only.offset + blockSize);
  }
  const block = new Uint8Array(blockSize);
  for (let i = first; i <= last; i++) {
    const { offset, data } = extents[i];
    const from = Math.max(start, offset);
    const to = Math.min(start + blockSize, offset + data.length);
    block.set(data.subarray(from - offset, to - offset), from - start);
  }
  return block;
}

function extentEnd(extent: DiskExtent): number {
  return extent.offset + extent.data.length;
}

/** Non-zero bytes of the extents; shared buffers are counted once per extent but scanned once. */
export function countNonZeroBytes(extents: readonly DiskExtent[]): number {
  const counted = new Map<Uint8Array, number>();
  let total = 0;
  for (const { data } of extents) {
    let count = counted.get(data);
    if (count === undefined) {
      count = nonZeroByteCount(data);
      counted.set(data, count);
    }
    total += count;
  }
  return total;
}

const ZERO_CHUNK = Buffer.alloc(4096);

function nonZeroByteCount(data: Uint8Array): number {
  let count = 0;
  for (let offset = 0; offset < data.length; offset += ZERO_CHUNK.length) {
    const chunk = Buffer.from(data.buffer, data.byteOffset + offset, Math.min(ZERO_CHUNK.length, data.length - offset));
    if (chunk.length === ZERO_CHUNK.length && chunk.equals(ZERO_CHUNK)) {
      continue;
    }
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== 0) {
        count++;
      }
    }
  }
  return count;
}
