/**
 * Kernel inspection: can AWS PV-GRUB boot this kernel file, and for which architecture?
 *
 * PV-GRUB is a Mini-OS guest that loads the kernel with Xen's own domain builder, so the rules
 * here are Xen's: xen/common/libelf/libelf-dominfo.c (which notes make a PV kernel),
 * tools/libs/guest (gzip and Linux bzImage handling, guest type) and stubdom/grub/kexec.c (a
 * 64-bit PV-GRUB boots only 'xen-3.0-x86_64' guests, a 32-bit one only 'xen-3.0-x86_32p').
 * Pure TypeScript on Node builtins, so it runs at synth time, in the CLI and in Lambda.
 */
import { closeSync, fstatSync, openSync, readSync } from 'fs';
import { classifyKernel, Found } from './classify';
import { GzipMemberReader, gunzipFirstMember, MAX_INFLATED_KERNEL_BYTES } from './compression';
import { KernelFormatError } from './elf';
import { AsyncReader, asyncRangeReader, bytesReader, rangeReader, runAsync, runSync, SyncReader } from './reads';
import { KernelSource, openKernelFile, sourceReader } from './source';
import { InspectKernelOptions, KernelInspection, XenNote } from './types';
import { inspectElf } from './xen-kernel';

export type { InspectKernelOptions, KernelInspection, XenNote } from './types';
export { MAX_INFLATED_KERNEL_BYTES } from './compression';
export type { KernelSource } from './source';

/** Thrown by assertBootableKernel for a kernel PV-GRUB cannot boot; the message says why and what to do. */
export class KernelNotBootableError extends Error {
  public readonly inspection: KernelInspection;

  constructor(inspection: KernelInspection) {
    super(inspection.reason ?? `PV-GRUB cannot boot this ${inspection.format} kernel`);
    this.name = 'KernelNotBootableError';
    this.inspection = inspection;
  }
}

/**
 * Inspects a kernel file held in memory: an ELF, a gzip-compressed ELF or a Linux bzImage. Only
 * the headers, program headers and notes are read; a gzip kernel is inflated whole (in memory)
 * and its CRC-32 and length checked. Never throws for bad bytes.
 */
export function inspectKernel(kernel: Uint8Array, options: InspectKernelOptions = {}): KernelInspection {
  if (!(kernel instanceof Uint8Array)) {
    throw new TypeError(`inspectKernel needs the kernel file's bytes as a Uint8Array or Buffer, but got ${kernel === null ? 'null' : typeof kernel}`);
  }
  const reader = bytesReader(kernel);
  return inspectFoundSync(runSync(classifyKernel(true), reader), reader, maxInflated(options));
}

/**
 * Inspects a kernel file without holding it: only the structures classification needs are read
 * (time and memory do not grow with the kernel's size). A gzip kernel is inflated as a stream,
 * in constant memory, to check its CRC-32 and length: that much does take time in proportion.
 * Never throws for bad bytes; a file that cannot be read is an error of the file system.
 */
export async function inspectKernelFile(path: string, options: InspectKernelOptions = {}): Promise<KernelInspection> {
  const file = await openKernelFile(path);
  try {
    return await inspectKernelSource(file, options);
  } finally {
    await file.close();
  }
}

/** inspectKernelFile for any source that reads ranges and streams (the handler's S3 object). */
export async function inspectKernelSource(source: KernelSource, options: InspectKernelOptions = {}): Promise<KernelInspection> {
  const reader = sourceReader(source);
  return inspectFoundAsync(await runAsync(classifyKernel(true), reader), reader, source, maxInflated(options));
}

/**
 * inspectKernelFile, synchronously (for synthesis, which cannot wait): reads only what
 * classification needs, but a gzip kernel is read and inflated whole in memory.
 */
export function inspectKernelFileSync(path: string, options: InspectKernelOptions = {}): KernelInspection {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const reader: SyncReader = (requests) => ({
      bytes: requests.map(({ offset, length }) => {
        const buffer = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
        for (let done = 0; done < buffer.length;) {
          const read = readSync(fd, buffer, done, buffer.length - done, offset + done);
          if (read === 0) return buffer.subarray(0, done);
          done += read;
        }
        return buffer;
      }),
      size,
    });
    return inspectFoundSync(runSync(classifyKernel(true), reader), reader, maxInflated(options));
  } finally {
    closeSync(fd);
  }
}

function maxInflated(options: InspectKernelOptions): number {
  return options.maxInflatedBytes ?? MAX_INFLATED_KERNEL_BYTES;
}

function inspectFoundSync(found: Found, reader: SyncReader, maxInflatedBytes: number): KernelInspection {
  switch (found.kind) {
    case 'inspected':
      return found.inspection;
    case 'elf':
      return found.describe(runSync(inspectElf(), found.offset === undefined ? reader : rangeReader(reader, found.offset, found.length!)));
    case 'gzip': {
      const [member] = reader([{ offset: found.offset, length: found.length }]).bytes;
      let inflated: Uint8Array;
      try {
        inflated = gunzipFirstMember(member, maxInflatedBytes);
      } catch (error) {
        if (error instanceof KernelFormatError) return found.refuse(error.message);
        throw error;
      }
      const inner = bytesReader(inflated);
      return found.describe(inspectFoundSync(runSync(found.inner(), inner), inner, maxInflatedBytes));
    }
  }
}

/**
 * The gzip case inflates as a stream (GzipMemberReader): the inner inspection reads what it
 * needs, then the rest is inflated to check the trailer. A gzip member that is not intact is
 * refused for that, whatever its first bytes looked like, as the in-memory driver does.
 */
async function inspectFoundAsync(found: Found, reader: AsyncReader, source: KernelSource, maxInflatedBytes: number): Promise<KernelInspection> {
  switch (found.kind) {
    case 'inspected':
      return found.inspection;
    case 'elf':
      return found.describe(await runAsync(inspectElf(), found.offset === undefined ? reader : asyncRangeReader(reader, found.offset, found.length!)));
    case 'gzip': {
      const gzip = new GzipMemberReader(source, found.offset, Math.min(found.length, source.sizeBytes - found.offset), maxInflatedBytes);
      try {
        const inner = await inspectFoundAsync(await runAsync(found.inner(), gzip.read), gzip.read, inflatedSource(gzip), maxInflatedBytes);
        await gzip.finish();
        return found.describe(inner);
      } catch (error) {
        if (error instanceof KernelFormatError) return found.refuse(error.message);
        throw error;
      } finally {
        gzip.close();
      }
    }
  }
}

/** What a gzip member inflates to, as a source (for a gzip payload inside a gzip kernel). */
function inflatedSource(gzip: GzipMemberReader): KernelSource {
  const read = async (offset: number, length: number) => (await gzip.read([{ offset, length }])).bytes[0];
  return {
    sizeBytes: Number.MAX_SAFE_INTEGER,
    read,
    async *stream(start: number, end: number) {
      for (let at = start; at < end;) {
        const chunk = await read(at, Math.min(2 ** 20, end - at));
        if (chunk.length === 0) return;
        yield chunk;
        at += chunk.length;
      }
    },
  };
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
