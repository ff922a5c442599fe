/**
 * Kernel inspection: can AWS PV-GRUB boot this kernel file, and for which architecture?
 *
 * PV-GRUB is a Mini-OS guest that loads the kernel with Xen's own domain builder, so the rules
 * here are Xen's: xen/common/libelf/libelf-dominfo.c (which notes make a PV kernel),
 * tools/libs/guest (gzip and Linux bzImage handling, guest type) and stubdom/grub/kexec.c (a
 * 64-bit PV-GRUB boots only 'xen-3.0-x86_64' guests, a 32-bit one only 'xen-3.0-x86_32p').
 * Pure TypeScript on Node builtins, so it runs at synth time, in the CLI and in Lambda.
 */
import { inspectBzImage, isBzImage } from './bzimage';
import { compressionOf, gunzipFirstMember, MAX_INFLATED_KERNEL_BYTES } from './compression';
import { isElf } from './elf';
import { InspectKernelOptions, KernelInspection, XenNote } from './types';
import { inspectElf, PV_KERNELS, refused } from './xen-kernel';

export type { InspectKernelOptions, KernelInspection, XenNote } from './types';
export { MAX_INFLATED_KERNEL_BYTES } from './compression';

/** Thrown by assertBootableKernel for a kernel PV-GRUB cannot boot; the message says why and what to do. */
export class KernelNotBootableError extends Error {
  public readonly inspection: KernelInspection;

  constructor(inspection: KernelInspection) {
    super(inspection.reason ?? `PV-GRUB cannot boot this ${inspection.format} kernel`);
    this.name = 'KernelNotBootableError';
    this.inspection = inspection;
  }
}

/** Inspects a kernel file: an ELF, a gzip-compressed ELF or a Linux bzImage. Never throws for bad bytes. */
export function inspectKernel(kernel: Uint8Array, options: InspectKernelOptions = {}): KernelInspection {
  if (!(kernel instanceof Uint8Array)) {
    throw new TypeError(`inspectKernel needs the kernel file's bytes as a Uint8Array or Buffer, but got ${kernel === null ? 'null' : typeof kernel}`);
  }
  return inspectFile(kernel, options.maxInflatedBytes ?? MAX_INFLATED_KERNEL_BYTES, true);
}

/** Inspects the kernel and throws a KernelNotBootableError (with the reason) when PV-GRUB cannot boot it. */
export function assertBootableKernel(kernel: Uint8Array, options: InspectKernelOptions = {}): KernelInspection {
  const inspection = inspectKernel(kernel, options);
  if (!inspection.bootable) {
    throw new KernelNotBootableError(inspection);
  }
  return inspection;
}

/** A multi-line report of an inspection, for people (the CLI's `inspect`). */
export function describeInspection(inspection: KernelInspection): string {
  const lines = [
    `Format:        ${inspection.format}`,
    `Bootable:      ${inspection.bootable ? 'yes, by PV-GRUB' : 'no'}`,
    `Architecture:  ${inspection.architecture ?? 'unknown'}`,
  ];
  const optional: Array<[string, string | undefined]> = [
    ['Guest OS:      ', inspection.guestOs],
    ['Xen version:   ', inspection.xenVersion],
    ['Loader:        ', inspection.loader],
    ['__xen_guest:   ', inspection.xenGuestInfo],
  ];
  lines.push(...optional.filter(([, value]) => value !== undefined).map(([label, value]) => `${label}${value}`));
  if (inspection.notes.length > 0) {
    lines.push('Xen ELF notes:', ...inspection.notes.map((note) => `  ${note.typeName} = ${formatNoteValue(note.value)}`));
  }
  lines.push(...inspection.warnings.map((warning) => `Warning: ${warning}`));
  if (inspection.reason) {
    lines.push(`Reason: ${inspection.reason}`);
  }
  return lines.join('\n');
}

function formatNoteValue(value: XenNote['value']): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Uint8Array) return `<${Buffer.from(value).toString('hex')}>`;
  return `0x${value.toString(16)}`;
}

function inspectFile(bytes: Uint8Array, maxInflatedBytes: number, mayBeCompressed: boolean): KernelInspection {
  if (bytes.length === 0) {
    return refused('empty', `The kernel file is empty (0 bytes). Give the kernel image built for Xen PV, e.g. MirageOS's <name>.xen.`);
  }
  if (isElf(bytes)) return inspectElf(bytes);
  if (isBzImage(bytes)) return inspectBzImage(bytes, maxInflatedBytes);
  const compression = compressionOf(bytes);
  if (compression === 'gzip' && mayBeCompressed) {
    let inflated: Uint8Array;
    try {
      inflated = gunzipFirstMember(bytes, maxInflatedBytes);
    } catch (error) {
      return refused('gzip-compressed data', `The kernel file starts with the gzip magic, but ${(error as Error).message}. Give an intact kernel file.`, true);
    }
    const inner = inspectFile(inflated, maxInflatedBytes, false);
    return { ...inner, format: `gzip-compressed ${inner.format}`, compressed: true };
  }
  if (compression && !mayBeCompressed) {
    return refused(`${compression}-compressed data`, `The gzip-compressed kernel holds ${compression}-compressed data, but Xen's loader decompresses only once. Compress the kernel once, with gzip.`);
  }
  if (compression) {
    // Refused rather than accepted with a warning: PV-GRUB could decompress bzip2, lzo or xz, but
    // Node has no decompressor for them, and without the ELF inside neither the architecture (which
    // picks the AKI) nor the Xen notes can be checked.
    return refused(
      `${compression}-compressed data`,
      `The kernel file is ${compression}-compressed, which this library cannot decompress to check its architecture and Xen notes. ` +
        'Give the uncompressed kernel, or recompress it with gzip (PV-GRUB decompresses gzip itself).',
    );
  }
  const head = Buffer.from(bytes.subarray(0, 8)).toString('hex').replace(/(..)/g, '$1 ').trim();
  return refused(
    'unknown',
    `The kernel file (${bytes.length} bytes, starting ${head}) is neither an ELF file, a gzip-compressed one nor a Linux bzImage. ` +
      `Give the Xen PV kernel image itself (an ELF file, such as MirageOS's <name>.xen): ${PV_KERNELS}.`,
  );
}
