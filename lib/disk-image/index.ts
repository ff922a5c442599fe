/**
 * The disk image writer: the ext2 disk that PV-GRUB reads, with /boot/grub/menu.lst and the kernel.
 * Pure TypeScript, so it runs in Lambda and in the CLI alike.
 */
export { DiskLayout, DiskImageError } from './types';
export type { DiskExtent, DiskBlock } from './types';
export { buildDiskImage, writeSparseFile } from './disk-image';
export type { DiskImageOptions, DiskImage } from './disk-image';
export { planDiskImage, maxKernelBytes } from './layout';
export { writeDiskImageFile } from './file';
export { streamDiskBlocks } from './stream';
export type { DiskImagePlan, DiskImageSettings, KernelRun } from './layout';
export { validateUnikernelName, validateKernelArgs } from './validation';
export { renderMenuLst } from './menu-lst';
