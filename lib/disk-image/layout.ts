/**
 * The disk PV-GRUB boots, planned from the kernel's size alone: every non-zero region but the
 * kernel's bytes, and where those bytes go. The writers (in memory, into a file, as a stream of
 * blocks) fill the plan in; none of them needs the whole kernel at once.
 */
import { createHash } from 'crypto';
import { maxKernelFileBytes, planExt2 } from './ext2';
import { MBR_PARTITION_OFFSET, mbrSector } from './mbr';
import { renderMenuLst } from './menu-lst';
import { DiskExtent, DiskImageError, DiskLayout } from './types';
import { validateKernelArgs, validateLayout, validateUnikernelName, validateVolumeSizeGiB } from './validation';

const GIB = 2 ** 30;

/** What goes on the disk besides the kernel's bytes. */
export interface DiskImageSettings {
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

/** Where `length` bytes of the kernel, from `kernelOffset` on, go on the disk. */
export interface KernelRun {
  /** Byte offset in the disk. */
  readonly diskOffset: number;
  /** Byte offset in the kernel file. */
  readonly kernelOffset: number;
  readonly length: number;
}

/** The disk without the kernel's bytes; everything outside `metadata` and `kernelRuns` is zero. */
export interface DiskImagePlan {
  /** volumeSizeGiB * 2^30. */
  readonly sizeBytes: number;
  readonly layout: DiskLayout;
  /** Byte offset of the ext2 filesystem: 0, or the partition start. */
  readonly filesystemOffset: number;
  /** Size of the ext2 filesystem: the fewest whole 128 MiB block groups that hold its files, at most the volume. */
  readonly filesystemBytes: number;
  /** Size of the kernel file. */
  readonly kernelBytes: number;
  /** '/boot/<name>.xen'. */
  readonly kernelPath: string;
  /** Exact text of /boot/grub/menu.lst. */
  readonly menuLst: string;
  /** The non-zero regions other than the kernel's bytes: sorted, non-overlapping, small. */
  readonly metadata: readonly DiskExtent[];
  /** Where the kernel's bytes go, in the kernel's order (kernelOffset and diskOffset both ascend). */
  readonly kernelRuns: readonly KernelRun[];
}

/**
 * Lays out the disk for a kernel of `kernelBytes` bytes: an ext2 filesystem (on the whole volume
 * or in the first MBR partition) holding /boot/grub/menu.lst and /boot/<name>.xen.
 * @throws DiskImageError for invalid settings or a kernel that does not fit
 */
export function planDiskImage(kernelBytes: number, settings: DiskImageSettings): DiskImagePlan {
  const { name, kernelArgs = '', layout = DiskLayout.WHOLE_VOLUME, volumeSizeGiB = 1 } = settings;
  validateUnikernelName(name);
  validateKernelArgs(kernelArgs);
  validateLayout(layout);
  validateVolumeSizeGiB(volumeSizeGiB);
  if (!Number.isSafeInteger(kernelBytes) || kernelBytes <= 0) {
    throw new DiskImageError(`The kernel is ${kernelBytes} bytes long; give a kernel file that is not empty.`);
  }
  const sizeBytes = volumeSizeGiB * GIB;
  const maxBytes = maxKernelBytes(volumeSizeGiB, layout);
  if (kernelBytes > maxBytes) {
    throw new DiskImageError(
      `The kernel is ${kernelBytes} bytes, but a ${volumeSizeGiB} GiB volume (${layout} layout) holds a kernel of at most ` +
      `${maxBytes} bytes: raise volumeSizeGiB.`,
    );
  }

  const kernelFileName = `${name}.xen`;
  const kernelPath = `/boot/${kernelFileName}`;
  const menuLst = renderMenuLst(name, kernelPath, kernelArgs, layout);
  const inputsDigest = digestOfInputs(kernelBytes, name, kernelArgs, layout, volumeSizeGiB);
  const filesystemOffset = layout === DiskLayout.MBR_PARTITION ? MBR_PARTITION_OFFSET : 0;

  const metadata: DiskExtent[] = [];
  if (layout === DiskLayout.MBR_PARTITION) {
    metadata.push({ offset: 0, data: mbrSector(sizeBytes, inputsDigest.readUInt32LE(16)) });
  }
  const filesystem = planExt2(sizeBytes - filesystemOffset, {
    kernelBytes,
    kernelFileName,
    menuLst: Buffer.from(menuLst, 'ascii'),
    uuidSeed: inputsDigest.toString('hex'),
  });
  for (const extent of filesystem.metadata) {
    metadata.push({ offset: filesystemOffset + extent.offset, data: extent.data });
  }
  let kernelOffset = 0;
  const kernelRuns = filesystem.kernelRuns.map((run) => {
    const placed = { diskOffset: filesystemOffset + run.offset, kernelOffset, length: run.length };
    kernelOffset += run.length;
    return placed;
  });
  return {
    sizeBytes,
    layout,
    filesystemOffset,
    filesystemBytes: filesystem.fsBytes,
    kernelBytes,
    kernelPath,
    menuLst,
    metadata,
    kernelRuns,
  };
}

/**
 * The seed of the filesystem UUID and the MBR disk signature: the same inputs give the same disk.
 * The kernel counts by its size, not its bytes, so that the disk's first blocks can be written
 * before the kernel has been read.
 */
function digestOfInputs(kernelBytes: number, name: string, kernelArgs: string, layout: DiskLayout, volumeSizeGiB: number): Buffer {
  return createHash('sha256').update(JSON.stringify({ name, kernelArgs, layout, volumeSizeGiB, kernelBytes })).digest();
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
