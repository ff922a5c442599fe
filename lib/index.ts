/**
 * mirage-unikernel-ami: turn a Xen PV unikernel kernel (MirageOS up to 3.8, Unikraft, Mini-OS, HaLVM)
 * into an EBS-backed paravirtual AMI that AWS PV-GRUB boots.
 */
export * from './unikernel-ami';
export { DiskLayout, DiskImageError, buildDiskImage, maxKernelBytes, validateKernelArgs, validateUnikernelName } from './disk-image';
export type { DiskImage, DiskImageOptions } from './disk-image';
export { inspectKernel, assertBootableKernel, describeInspection, KernelNotBootableError } from './kernel-inspection';
export type { KernelInspection, InspectKernelOptions, XenNote } from './kernel-inspection';
export * from './pv-grub';
