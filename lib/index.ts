/**
 * mirage-unikernel-ami: turn a Xen PV unikernel kernel (MirageOS up to 3.8, Unikraft, Mini-OS, HaLVM)
 * into an EBS-backed paravirtual AMI that AWS PV-GRUB boots.
 *
 * The root export is the construct API, which jsii compiles for TypeScript, Python, Java, .NET and
 * Go: the construct, its props and every type they use. The TypeScript-only tools live behind
 * subpath exports (package.json `exports`): `mirage-unikernel-ami/disk-image`, `/kernel-inspection`,
 * `/pv-grub` and `/xen`.
 */
export * from './unikernel-ami';
export { DiskLayout } from './disk-image/types';
export { KernelArchitecture } from './pv-grub';
