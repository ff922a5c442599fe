/**
 * Building a kernel's disk image exactly as the construct would: one function for `disk`, which
 * writes it, and `boot`, which boots it, so the two cannot drift apart. The kernel is inspected from
 * its file (headers and notes only, or a streamed gzip check) and then copied into the image through
 * a small buffer, so memory stays the same whatever the kernel's size.
 */
import { DiskImagePlan, writeDiskImageFile } from '../disk-image';
import { inspectKernelFile, KernelInspection } from '../kernel-inspection';
import { CliIo } from './io';
import { defaultName, parseLayout, parseSizeGiB, withFiles } from './options';

/** The disk options both commands take, as given on the command line. */
export interface KernelDiskOptions {
  readonly name?: string;
  readonly args?: string;
  readonly layout?: string;
  readonly 'size-gib'?: string;
}

export interface KernelDisk {
  readonly plan: DiskImagePlan;
  readonly inspection: KernelInspection;
  readonly name: string;
}

/**
 * Inspects KERNEL, lays out its disk (name, kernel arguments, layout, size as the construct takes
 * them) and writes it to `out` as a sparse file. Prints inspection warnings to stderr.
 * @returns undefined, after saying why on stderr, when PV-GRUB could not boot the kernel
 */
export async function writeKernelDisk(kernelPath: string, options: KernelDiskOptions, out: string, io: CliIo): Promise<KernelDisk | undefined> {
  const name = options.name ?? defaultName(kernelPath);
  const settings = {
    name,
    kernelArgs: options.args ?? '',
    layout: parseLayout(options.layout),
    volumeSizeGiB: parseSizeGiB(options['size-gib']),
  };
  const inspection = await withFiles(kernelPath, undefined, () => inspectKernelFile(kernelPath));
  if (!inspection.bootable) {
    io.stderr(`mirage-unikernel-ami: ${kernelPath} cannot be booted by PV-GRUB: ${inspection.reason}\n`);
    return undefined;
  }
  for (const warning of inspection.warnings) {
    io.stderr(`warning: ${warning}\n`);
  }
  const plan = await withFiles(kernelPath, out, async () => writeDiskImageFile(kernelPath, out, settings));
  return { plan, inspection, name };
}
