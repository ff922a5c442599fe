/**
 * mirage-unikernel-ami: turn a Xen PV unikernel kernel (MirageOS up to 3.8, Unikraft, Mini-OS, HaLVM)
 * into an EBS-backed paravirtual AMI that AWS PV-GRUB boots.
 */
export * from './unikernel-ami';
export {
  DiskLayout, DiskImageError, buildDiskImage, planDiskImage, writeDiskImageFile, maxKernelBytes, validateKernelArgs, validateUnikernelName,
} from './disk-image';
export type { DiskImage, DiskImageOptions, DiskImagePlan, DiskImageSettings, KernelRun } from './disk-image';
export { inspectKernel, inspectKernelFile, assertBootableKernel, describeInspection, KernelNotBootableError } from './kernel-inspection';
export type { KernelInspection, InspectKernelOptions, XenNote } from './kernel-inspection';
export * from './pv-grub';
