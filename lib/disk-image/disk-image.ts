import { closeSync, ftruncateSync, openSync } from 'fs';
import { writeFully } from './file';
import { DiskImageSettings, planDiskImage } from './layout';
import { countNonZeroBytes, nonZeroBlocks } from './sparse';
import { DiskBlock, DiskExtent, DiskImageError, DiskLayout } from './types';

/** What goes on the disk, with the kernel's bytes in memory. */
export interface DiskImageOptions extends DiskImageSettings {
  /** Kernel bytes, written byte-identical (a gzip kernel as is). */
  readonly kernel: Uint8Array;
}

/** A disk image held as its non-zero regions: everything outside `extents` reads as zero. */
export interface DiskImage {
  /** volumeSizeGiB * 2^30. */
  readonly sizeBytes: number;
  readonly layout: DiskLayout;
  /** Byte offset of the ext2 filesystem: 0, or the partition start. */
  readonly filesystemOffset: number;
  /** '/boot/<name>.xen'. */
  readonly kernelPath: string;
  /** Exact text of /boot/grub/menu.lst. */
  readonly menuLst: string;
  /** Sorted, non-overlapping. Kernel extents are views of the caller's kernel buffer. */
  readonly extents: readonly DiskExtent[];
  /** Count of bytes in the image that are not zero (computed on first use). */
  readonly nonZeroBytes: number;
  /** Blocks that are not all zero, in ascending index, made one at a time. @param blockSize default 524288 (EBS direct API block) */
  nonZeroBlocks(blockSize?: number): Iterable<DiskBlock>;
}

class SparseDiskImage implements DiskImage {
  private nonZeroByteCount?: number;

  constructor(
    readonly sizeBytes: number,
    readonly layout: DiskLayout,
    readonly filesystemOffset: number,
    readonly kernelPath: string,
    readonly menuLst: string,
    readonly extents: readonly DiskExtent[],
  ) {}

  get nonZeroBytes(): number {
    this.nonZeroByteCount ??= countNonZeroBytes(this.extents);
    return this.nonZeroByteCount;
  }

  nonZeroBlocks(blockSize?: number): Iterable<DiskBlock> {
    return nonZeroBlocks(this.extents, this.sizeBytes, blockSize);
  }
}

/**
 * Lays out the disk PV-GRUB boots (see planDiskImage) with the kernel's bytes in memory. Nothing
 * of the volume's size is allocated: the image is its non-zero extents, the kernel's referenced
 * without copying. For a kernel in a file, writeDiskImageFile never holds it whole.
 * @throws DiskImageError for invalid options or a kernel that does not fit
 */
export function buildDiskImage(options: DiskImageOptions): DiskImage {
  const { kernel } = options;
  if (!(kernel instanceof Uint8Array) || kernel.length === 0) {
    throw new DiskImageError('The kernel is empty or not bytes: give the kernel file\'s contents as a Uint8Array (a Buffer).');
  }
  const plan = planDiskImage(kernel.length, options);
  const extents: DiskExtent[] = [
    ...plan.metadata,
    ...plan.kernelRuns.map((run) => ({ offset: run.diskOffset, data: kernel.subarray(run.kernelOffset, run.kernelOffset + run.length) })),
  ].sort((a, b) => a.offset - b.offset);
  return new SparseDiskImage(plan.sizeBytes, plan.layout, plan.filesystemOffset, plan.kernelPath, plan.menuLst, extents);
}

/**
 * Writes the image to `path`: created or truncated to sizeBytes, then only the extents written, so
 * the rest stays a hole on filesystems that support sparse files.
 */
export function writeSparseFile(image: DiskImage, path: string): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, image.sizeBytes);
    for (const { offset, data } of image.extents) {
      writeFully(fd, data, offset);
    }
  } finally {
    closeSync(fd);
  }
}
