/** Recognising compressed kernels, and a bounded gunzip of one gzip member. */
import { inflateRawSync } from 'zlib';
import { KernelFormatError } from './elf';

/**
 * Xen's domain builder refuses to decompress a kernel said to inflate beyond 1 GiB
 * (XC_DOM_DECOMPRESS_MAX, a guard against decompression bombs: XSA-25); so do we.
 */
export const MAX_INFLATED_KERNEL_BYTES = 1024 * 1024 * 1024;

/** The compressions a kernel (or a Linux bzImage payload) may use, by their leading magic bytes. */
const COMPRESSION_MAGICS: ReadonlyArray<{ readonly name: string; readonly magic: readonly number[] }> = [
  { name: 'gzip', magic: [0x1f, 0x8b] },
  { name: 'bzip2', magic: [0x42, 0x5a, 0x68] },
  { name: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: 'lzo', magic: [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a] },
  { name: 'lz4', magic: [0x02, 0x21, 0x4c, 0x18] },
  { name: 'lz4', magic: [0x04, 0x22, 0x4d, 0x18] },
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: 'lzma', magic: [0x5d, 0x00, 0x00] },
];

/** The name of the compression the bytes start with, or undefined. */
export function compressionOf(bytes: Uint8Array): string | undefined {
  return COMPRESSION_MAGICS.find(({ magic }) => magic.length <= bytes.length && magic.every((byte, i) => bytes[i] === byte))?.name;
}

const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;

/**
 * Inflates the first gzip member and ignores whatever follows it, as zlib's single inflate call
 * in Xen's loader does (Linux appends the uncompressed size after its gzip payload).
 */
export function gunzipFirstMember(bytes: Uint8Array, maxInflatedBytes: number): Uint8Array {
  const deflateStart = gzipHeaderLength(bytes);
  try {
    return inflateRawSync(bytes.subarray(deflateStart), { maxOutputLength: maxInflatedBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new KernelFormatError(
        `the gzip data inflates to more than ${maxInflatedBytes} bytes, the most Xen's loader decompresses: it is not a kernel, or not one PV-GRUB can load`,
      );
    }
    throw new KernelFormatError(`the gzip data is corrupt or truncated (zlib: ${(error as Error).message})`);
  }
}

/** The length of the RFC 1952 member header: 10 bytes plus the optional extra field, name, comment and CRC. */
function gzipHeaderLength(bytes: Uint8Array): number {
  const truncated = () => new KernelFormatError(`the gzip header is truncated (${bytes.length} bytes in all)`);
  if (bytes.length < 10) throw truncated();
  if (bytes[2] !== 8) {
    throw new KernelFormatError(`the gzip header names compression method ${bytes[2]}, not 8 (deflate), the only one gzip defines`);
  }
  const flags = bytes[3];
  let at = 10;
  if (flags & FEXTRA) {
    if (at + 2 > bytes.length) throw truncated();
    at += 2 + (bytes[at] | (bytes[at + 1] << 8));
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flags & flag) {
      const end = bytes.indexOf(0, at);
      if (end === -1) throw truncated();
      at = end + 1;
    }
  }
  if (flags & FHCRC) at += 2;
  if (at > bytes.length) throw truncated();
  return at;
}
