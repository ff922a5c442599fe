import { EBS_SNAPSHOT_BLOCK_BYTES, XEN_GUEST_CMDLINE_BYTES } from '../pv-grub';
import { DiskImageError, DiskLayout } from './types';

/** The name becomes the file /boot/<name>.xen, the menu.lst title and part of the AMI name. */
const UNIKERNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** EBS volumes are 1 to 16384 GiB. */
export const MAX_VOLUME_SIZE_GIB = 16384;

/**
 * Refuses a name that could not be a file name in /boot, a menu.lst title or an AMI name part.
 * @throws DiskImageError
 */
export function validateUnikernelName(name: string): void {
  if (typeof name !== 'string' || !UNIKERNEL_NAME.test(name)) {
    throw new DiskImageError(
      `Invalid unikernel name ${JSON.stringify(name)}: use 1 to 64 characters of letters, digits, '.', '_' and '-', ` +
      'starting with a letter or digit (the name becomes the file /boot/<name>.xen and part of the AMI name).',
    );
  }
}

/**
 * Refuses kernel arguments that would break the menu.lst `kernel` line or not fit Xen's guest command line.
 *
 * What is counted: the bytes of `kernelArgs` alone plus one terminating NUL. PV-GRUB drops the kernel path
 * from the `kernel` line and hands the rest to Xen (stubdom/grub/mini-os.c `load_image`: `skip_to(0, arg)`),
 * which copies it into start_info.cmd_line, 1024 bytes with the terminator (MAX_GUEST_CMDLINE); longer
 * arguments would be cut silently, so at most 1023 bytes are accepted.
 * @throws DiskImageError
 */
export function validateKernelArgs(kernelArgs: string): void {
  if (typeof kernelArgs !== 'string') {
    throw new DiskImageError(`Invalid kernel arguments ${String(kernelArgs)}: give a string (possibly empty).`);
  }
  for (let i = 0; i < kernelArgs.length; i++) {
    const code = kernelArgs.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) {
      throw new DiskImageError(
        `Invalid kernel arguments ${JSON.stringify(kernelArgs)}: character ${i} is U+${code.toString(16).toUpperCase().padStart(4, '0')}; ` +
        'only printable ASCII (space to ~) is allowed, because menu.lst is one line per command and GRUB reads it as ASCII.',
      );
    }
  }
  const maxBytes = XEN_GUEST_CMDLINE_BYTES - 1;
  if (kernelArgs.length > maxBytes) {
    throw new DiskImageError(
      `Kernel arguments are ${kernelArgs.length} bytes; Xen's guest command line holds at most ${maxBytes} bytes ` +
      `(${XEN_GUEST_CMDLINE_BYTES} with the terminating NUL). Shorten them.`,
    );
  }
}

/** @throws DiskImageError unless the size is a whole number of GiB that EBS accepts. */
export function validateVolumeSizeGiB(volumeSizeGiB: number): void {
  if (!Number.isInteger(volumeSizeGiB) || volumeSizeGiB < 1 || volumeSizeGiB > MAX_VOLUME_SIZE_GIB) {
    throw new DiskImageError(
      `Invalid volumeSizeGiB ${volumeSizeGiB}: give a whole number of GiB from 1 to ${MAX_VOLUME_SIZE_GIB} (the EBS volume size range).`,
    );
  }
}

/** @throws DiskImageError unless the layout is one of DiskLayout's values. */
export function validateLayout(layout: DiskLayout): void {
  if (!Object.values(DiskLayout).includes(layout)) {
    throw new DiskImageError(
      `Invalid disk layout ${JSON.stringify(layout)}: use one of ${Object.values(DiskLayout).map((l) => `'${l}'`).join(', ')}.`,
    );
  }
}

/**
 * Refuses a block size the disk cannot be cut into: the writers of blocks (in memory and streamed)
 * both need whole blocks that cover the disk exactly.
 * @throws DiskImageError
 */
export function validateBlockSize(blockSize: number, diskBytes: number): void {
  if (!Number.isInteger(blockSize) || blockSize <= 0 || diskBytes % blockSize !== 0) {
    throw new DiskImageError(
      `Invalid block size ${blockSize}: give a positive whole number of bytes that divides the disk size ${diskBytes} ` +
      `(the EBS direct API uses ${EBS_SNAPSHOT_BLOCK_BYTES}).`,
    );
  }
}
