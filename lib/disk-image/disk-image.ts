import { createHash } from 'crypto';
import { closeSync, ftruncateSync, openSync, writeSync } from 'fs';
import { buildExt2, maxKernelFileBytes } from './ext2';
import { MBR_PARTITION_OFFSET, mbrSector } from './mbr';
import { renderMenuLst } from './menu-lst';
import { countNonZeroBytes, nonZeroBlocks } from './sparse';
import { DiskBlock, DiskExtent, DiskImageError, DiskLayout } from './types';
import { validateKernelArgs, validateLayout, validateUnikernelName, validateVolumeSizeGiB } from './validation';

const GIB = 2 ** 30;

/** What goes on the disk. */
export interface DiskImageOptions {
  /** Kernel bytes, written byte-identical (a gzip kernel as is). */
  readonly kernel: Uint8Array;
  /** Unikernel name: the menu.lst title and the file /boot/<name>.xen. */
  readonly name: string;
  /**
   * Kernel command line.
   * @default ''
   */
  readonly kernelArgs?: string;
  /**
   * Where the filesystem sits on the volume.
   * @default DiskLayout.WHOLE_VOLUME
   */
  readonly layout?: DiskLayout;
  /**
   * Volume size in GiB, a whole number from 1 to 16384 (the EBS range).
   * @default 1
   */
  readonly volumeSizeGiB?: number;
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
 * Lays out the disk PV-GRUB boots: an ext2 filesystem (on the whole volume or in the first MBR
 * partition) holding /boot/grub/menu.lst and /boot/<name>.xen. Nothing of the volume's size is
 * allocated: the image is its non-zero extents, the kernel's referenced without copying.
 * @throws DiskImageError for invalid options or a kernel that does not fit
 */
export function buildDiskImage(options: DiskImageOptions): DiskImage {
  const { kernel, name, kernelArgs = '', layout = DiskLayout.WHOLE_VOLUME, volumeSizeGiB = 1 } = options;
  validateUnikernelName(name);
  validateKernelArgs(kernelArgs);
  validateLayout(layout);
  validateVolumeSizeGiB(volumeSizeGiB);
  if (!(kernel instanceof Uint8Array) || kernel.length === 0) {
    throw new DiskImageError('The kernel is empty or not bytes: give the kernel file\'s contents as a Uint8Array (a Buffer).');
  }
  const sizeBytes = volumeSizeGiB * GIB;
  const maxBytes = maxKernelBytes(volumeSizeGiB, layout);
  if (kernel.length > maxBytes) {
    throw new DiskImageError(
      `The kernel is ${kernel.length} bytes, but a ${volumeSizeGiB} GiB volume (${layout} layout) holds a kernel of at most ` +
      `${maxBytes} bytes: raise volumeSizeGiB.`,
    );
  }

  const kernelFileName = `${name}.xen`;
  const kernelPath = `/boot/${kernelFileName}`;
  const menuLst = renderMenuLst(name, kernelPath, kernelArgs, layout);
  const inputsDigest = digestOfInputs(kernel, name, kernelArgs, layout, volumeSizeGiB);
  const filesystemOffset = layout === DiskLayout.MBR_PARTITION ? MBR_PARTITION_OFFSET : 0;

  const extents: DiskExtent[] = [];
  if (layout === DiskLayout.MBR_PARTITION) {
    extents.push({ offset: 0, data: mbrSector(sizeBytes, inputsDigest.readUInt32LE(16)) });
  }
  const filesystem = buildExt2(sizeBytes - filesystemOffset, {
    kernel,
    kernelFileName,
    menuLst: Buffer.from(menuLst, 'ascii'),
    uuidSeed: inputsDigest.toString('hex'),
  });
  for (const extent of filesystem) {
    extents.push({ offset: filesystemOffset + extent.offset, data: extent.data });
  }
  return new SparseDiskImage(sizeBytes, layout, filesystemOffset, kernelPath, menuLst, extents);
}

function digestOfInputs(kernel: Uint8Array, name: string, kernelArgs: string, layout: DiskLayout, volumeSizeGiB: number): Buffer {
  return createHash('sha256')
    .update(JSON.stringify({ name, kernelArgs, layout, volumeSizeGiB, kernelBytes: kernel.length }))
    .update(kernel)
    .digest();
}

/**
 * The largest kernel, in bytes, that a volume of this size and layout holds; for synth-time checks.
 * It is also never more than 2 GiB - 1: ext2 without large_file and GRUB 0.97 keep file sizes in 31 bits.
 * @throws DiskImageError for an invalid size or layout
 */
export function maxKernelBytes(volumeSizeGiB: number, layout: DiskLayout): number {
  validateVolumeSizeGiB(volumeSizeGiB);
  validateLayout(layout);
  const sizeBytes = volumeSizeGiB * GIB;
  const filesystemBytes = layout === DiskLayout.MBR_PARTITION ? sizeBytes - MBR_PARTITION_OFFSET : sizeBytes;
  if (layout === DiskLayout.MBR_PARTITION) {
    mbrSector(sizeBytes, 0); // refuses disks an MBR cannot address
  }
  return maxKernelFileBytes(filesystemBytes);
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
      let written = 0;
      while (written < data.length) {
        written += writeSync(fd, data, written, data.length - written, offset + written);
      }
    }
  } finally {
    closeSync(fd);
  }
}
