/**
 * Building a kernel's disk image exactly as the construct would: one function for `disk`, which
 * writes it, and `boot`, which boots it, so the two cannot drift apart.
 */
import { buildDiskImage, DiskImage, writeSparseFile } from '../disk-image';
import { inspectKernel, KernelInspection } from '../kernel-inspection';
import { CliIo } from './io';
import { defaultName, parseLayout, parseSizeGiB, readKernel } from './options';

/** The disk options both commands take, as given on the command line. */
export interface KernelDiskOptions {
  readonly name?: string;
  readonly args?: string;
  readonly layout?: string;
  readonly 'size-gib'?: string;
}

export interface KernelDisk {
  readonly image: DiskImage;
  readonly inspection: KernelInspection;
  readonly name: string;
}

/**
 * Inspects KERNEL, lays out its disk (name, kernel arguments, layout, size as the construct takes
 * them) and writes it to `out` as a sparse file. Prints inspection warnings to stderr.
 * @returns undefined, after saying why on stderr, when PV-GRUB could not boot the kernel
 */
export function writeKernelDisk(kernelPath: string, options: KernelDiskOptions, out: string, io: CliIo): KernelDisk | undefined {
  const kernel = readKernel(kernelPath);
  const inspection = inspectKernel(kernel);
  if (!inspection.bootable) {
    io.stderr(`mirage-unikernel-ami: ${kernelPath} cannot be booted by PV-GRUB: ${inspection.reason}\n`);
    return undefined;
  }
  for (const warning of inspection.warnings) {
    io.stderr(`warning: ${warning}\n`);
  }
  const name = options.name ?? defaultName(kernelPath);
  const image = buildDiskImage({
    kernel,
    name,
    kernelArgs: options.args ?? '',
    layout: parseLayout(options.layout),
    volumeSizeGiB: parseSizeGiB(options['size-gib']),
  });
  writeSparseFile(image, out);
  return { image, inspection, name };
}
