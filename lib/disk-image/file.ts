/**
 * Writes the disk image of a kernel file into an image file, in memory that does not grow with the
 * kernel: the layout comes from the kernel's size, the metadata is written where it goes, and the
 * kernel is copied through one reused buffer with positioned reads and writes.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, rmSync, writeSync } from 'fs';
import { DiskImagePlan, DiskImageSettings, planDiskImage } from './layout';
import { DiskImageError } from './types';

/** The kernel is copied 1 MiB at a time: few system calls, and nothing a kernel's size could grow. */
const COPY_CHUNK_BYTES = 2 ** 20;

/**
 * Writes the raw disk image of the kernel file at `kernelPath` to `outPath` (created, or truncated)
 * as a sparse file of the volume's size: only the non-zero regions are written, and all-zero 1 MiB
 * stretches of the kernel stay holes, as `mke2fs -d` leaves them. The image is byte for byte the
 * one buildDiskImage makes of the same kernel. On failure the output file is removed.
 * @returns the layout that was written
 * @throws DiskImageError for invalid settings, a kernel that does not fit, or one that changes while it is copied
 */
export function writeDiskImageFile(kernelPath: string, outPath: string, settings: DiskImageSettings): DiskImagePlan {
  const kernel = openSync(kernelPath, 'r');
  try {
    const stat = fstatSync(kernel);
    if (!stat.isFile()) {
      throw new DiskImageError(`${kernelPath} is not a regular file; give the kernel file itself.`);
    }
    const plan = planDiskImage(stat.size, settings);
    const out = openSync(outPath, 'w');
    try {
      ftruncateSync(out, plan.sizeBytes);
      for (const { offset, data } of plan.metadata) {
        writeFully(out, data, offset);
      }
      copyKernel(kernel, kernelPath, out, plan);
      closeSync(out);
    } catch (err) {
      closeSync(out);
      rmSync(outPath, { force: true });
      throw err;
    }
    return plan;
  } finally {
    closeSync(kernel);
  }
}

function copyKernel(kernel: number, kernelPath: string, out: number, plan: DiskImagePlan): void {
  const buffer = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  const zeros = Buffer.alloc(COPY_CHUNK_BYTES);
  for (const run of plan.kernelRuns) {
    for (let done = 0; done < run.length;) {
      const length = Math.min(COPY_CHUNK_BYTES, run.length - done);
      const read = readSync(kernel, buffer, 0, length, run.kernelOffset + done);
      if (read === 0) {
        throw new DiskImageError(
          `The kernel file ${kernelPath} ended at byte ${run.kernelOffset + done} while it was copied, but it was ${plan.kernelBytes} bytes ` +
          'when the disk was laid out: it changed during the copy. Write the disk again once the kernel file is complete.',
        );
      }
      const chunk = buffer.subarray(0, read);
      if (!chunk.equals(zeros.subarray(0, read))) {
        writeFully(out, chunk, run.diskOffset + done);
      }
      done += read;
    }
  }
}

/** Writes all of `data` at `position` (a positioned write may write less than it was given). */
export function writeFully(fd: number, data: Uint8Array, position: number): void {
  for (let written = 0; written < data.length;) {
    written += writeSync(fd, data, written, data.length - written, position + written);
  }
}
