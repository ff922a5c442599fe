/**
 * Facts about Amazon EC2 paravirtual (PV) booting with PV-GRUB.
 *
 * Source: the Amazon EC2 user guide pages "User provided kernels", "Linux AMI virtualization
 * types" and "EBS direct APIs". Kept here, in one place, so the construct, the handler and the
 * CLI cannot disagree about them.
 */

/** A kernel architecture that PV-GRUB can start. A 64-bit PV-GRUB cannot start a 32-bit kernel, or the reverse. */
export enum KernelArchitecture {
  /** 64-bit x86 kernel (EC2 architecture name `x86_64`). */
  X86_64 = 'x86_64',
  /** 32-bit x86 kernel (EC2 architecture name `i386`). */
  I386 = 'i386',
}

/** The PV-GRUB release whose AKIs are listed here. AWS says to register new AMIs with the hd0 AKIs. */
export const PV_GRUB_VERSION = '1.05';

/**
 * PV-GRUB 1.05 "hd0" AKI ids per region. An hd0 AKI looks for menu.lst at (hd0)/boot/grub first
 * and then in the first partitions, so it boots both disk layouts this library writes.
 */
export const PV_GRUB_AKIS: { readonly [region: string]: { readonly [arch in KernelArchitecture]: string } } = {
  'ap-northeast-1': { i386: 'aki-f975a998', x86_64: 'aki-7077ab11' },
  'ap-southeast-1': { i386: 'aki-17a40074', x86_64: 'aki-73a50110' },
  'ap-southeast-2': { i386: 'aki-ba5665d9', x86_64: 'aki-66506305' },
  'eu-central-1': { i386: 'aki-1419e57b', x86_64: 'aki-931fe3fc' },
  'eu-west-1': { i386: 'aki-1c9fd86f', x86_64: 'aki-dc9ed9af' },
  'sa-east-1': { i386: 'aki-7cd34110', x86_64: 'aki-912fbcfd' },
  'us-east-1': { i386: 'aki-04206613', x86_64: 'aki-5c21674b' },
  'us-gov-west-1': { i386: 'aki-5ee9573f', x86_64: 'aki-9ee55bff' },
  'us-west-1': { i386: 'aki-43cf8123', x86_64: 'aki-59cc8239' },
  'us-west-2': { i386: 'aki-7a69931a', x86_64: 'aki-70cb0e10' },
};

/** The regions that have a PV-GRUB AKI, sorted. */
export const PV_GRUB_REGIONS: readonly string[] = Object.keys(PV_GRUB_AKIS).sort();

/** The PV-GRUB AKI for a region and architecture, or undefined when the region has none. */
export function pvGrubKernelId(region: string, architecture: KernelArchitecture): string | undefined {
  return PV_GRUB_AKIS[region]?.[architecture];
}

/** The architecture an AKI id of the table starts, or undefined for an id not in the table. */
export function architectureOfKernelId(kernelId: string): KernelArchitecture | undefined {
  for (const akis of Object.values(PV_GRUB_AKIS)) {
    for (const arch of [KernelArchitecture.X86_64, KernelArchitecture.I386]) {
      if (akis[arch] === kernelId) {
        return arch;
      }
    }
  }
  return undefined;
}

/**
 * Previous-generation instance families that run PV AMIs. AWS: current generation instance types
 * do not support PV AMIs.
 */
export const PV_INSTANCE_FAMILIES: readonly string[] = ['c1', 'c3', 'hs1', 'm1', 'm2', 'm3', 't1'];

/** Whether an instance type such as `t1.micro` (family.size) belongs to a family that runs PV AMIs. */
export function isPvInstanceType(instanceType: string): boolean {
  const match = /^([a-z0-9]+)\.[a-z0-9]+$/i.exec(instanceType);
  return match !== null && PV_INSTANCE_FAMILIES.includes(match[1].toLowerCase());
}

/** PV-GRUB reads the kernel's command line into Xen's guest command line: 1024 bytes with the terminator. */
export const XEN_GUEST_CMDLINE_BYTES = 1024;

/** EBS direct API facts: snapshots are written in 512 KiB blocks; unwritten blocks read as zeros. */
export const EBS_SNAPSHOT_BLOCK_BYTES = 512 * 1024;

/** The root device name reserved for the root volume of PV instances. */
export const PV_ROOT_DEVICE_NAME = '/dev/sda1';
