/**
 * What a kernel file is, from its first bytes: an ELF, a gzip-compressed kernel, a Linux bzImage,
 * or something PV-GRUB cannot boot. The ELF (possibly inside gzip) is then inspected by the
 * driver that reads the file (index.ts), which alone knows how to reach the bytes.
 */
import { classifyBzImage, isBzImage, SETUP_HEADER_END } from './bzimage';
import { compressionOf } from './compression';
import { isElf } from './elf';
import { readRange, Reads } from './reads';
import { KernelInspection } from './types';
import { PV_KERNELS, refused } from './xen-kernel';

/** What the first bytes say, and what is left to read. */
export type Found =
  /** Decided without reading further. */
  | { readonly kind: 'inspected'; readonly inspection: KernelInspection }
  /** An ELF: at [offset, offset + length) of the data, or the data itself; `describe` turns its inspection into the file's. */
  | { readonly kind: 'elf'; readonly offset?: number; readonly length?: number; readonly describe: (elf: KernelInspection) => KernelInspection }
  /** A gzip member at [offset, offset + length): once inflated and intact, `inner` says what it holds. */
  | {
    readonly kind: 'gzip';
    readonly offset: number;
    readonly length: number;
    readonly inner: () => Reads<Found>;
    readonly describe: (inner: KernelInspection) => KernelInspection;
    /** The inspection when the gzip data cannot be inflated or is not intact. */
    readonly refuse: (reason: string) => KernelInspection;
  };

/**
 * Classifies a kernel file (or, with mayBeCompressed false, what a gzip kernel inflates to: Xen
 * decompresses once). Reads the first bytes, and a bzImage's payload head.
 */
export function* classifyKernel(mayBeCompressed: boolean): Reads<Found> {
  const { bytes: head, size } = yield* readRange(0, SETUP_HEADER_END);
  if (head.length === 0) {
    return inspected(refused('empty', `The kernel file is empty (0 bytes). Give the kernel image built for Xen PV, e.g. MirageOS's <name>.xen.`));
  }
  if (isElf(head)) {
    return { kind: 'elf', describe: (elf) => elf };
  }
  if (isBzImage(head)) {
    return yield* classifyBzImage(head, size ?? Number.MAX_SAFE_INTEGER);
  }
  const compression = compressionOf(head);
  if (compression === 'gzip' && mayBeCompressed) {
    return {
      kind: 'gzip',
      offset: 0,
      // Readers of files know their size; only what a gzip member inflates to may not, and it is never gzip here.
      length: size ?? Number.MAX_SAFE_INTEGER,
      inner: () => classifyKernel(false),
      describe: (inner) => ({ ...inner, format: `gzip-compressed ${inner.format}`, compressed: true }),
      refuse: (reason) => refused('gzip-compressed data', `The kernel file starts with the gzip magic, but ${reason}. Give an intact kernel file.`, true),
    };
  }
  if (compression && !mayBeCompressed) {
    return inspected(refused(`${compression}-compressed data`, `The gzip-compressed kernel holds ${compression}-compressed data, but Xen's loader decompresses only once. Compress the kernel once, with gzip.`));
  }
  if (compression) {
    // Refused rather than accepted with a warning: PV-GRUB could decompress bzip2, lzo or xz, but
    // Node has no decompressor for them, and without the ELF inside neither the architecture (which
    // picks the AKI) nor the Xen notes can be checked.
    return inspected(refused(
      `${compression}-compressed data`,
      `The kernel file is ${compression}-compressed, which this library cannot decompress to check its architecture and Xen notes. ` +
        'Give the uncompressed kernel, or recompress it with gzip (PV-GRUB decompresses gzip itself).',
    ));
  }
  const start = Buffer.from(head.subarray(0, 8)).toString('hex').replace(/(..)/g, '$1 ').trim();
  // Only what a gzip stream inflates to has no size yet; reading to its end (which checking the gzip trailer does anyway) gives it.
  const total = size ?? (yield* readRange(Number.MAX_SAFE_INTEGER, 0)).size;
  return inspected(refused(
    'unknown',
    `The kernel file (${total} bytes, starting ${start}) is neither an ELF file, a gzip-compressed one nor a Linux bzImage. ` +
      `Give the Xen PV kernel image itself (an ELF file, such as MirageOS's <name>.xen): ${PV_KERNELS}.`,
  ));
}

function inspected(inspection: KernelInspection): Found {
  return { kind: 'inspected', inspection };
}
