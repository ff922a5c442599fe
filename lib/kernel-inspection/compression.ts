/**
 * Recognising compressed kernels, and inflating one gzip member with its integrity checked: the
 * deflate data must be whole and the trailer's CRC-32 and length (RFC 1952) must match what it
 * inflates to, as `gzip -t` and zlib's gzip decoding in Xen's loader require.
 */
import * as zlib from 'zlib';
import { KernelFormatError } from './elf';
import { ReadRequest, ReadResults } from './reads';
import { KernelSource } from './source';

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
/** CRC-32 and the length of the inflated data modulo 2^32, little-endian. */
const TRAILER_BYTES = 8;
/** A gzip header this long (with its file name and comment) is not a kernel's; the async reader reads no further for it. */
const MAX_HEADER_BYTES = 64 * 1024;

/** The length of the RFC 1952 member header: 10 bytes plus the optional extra field, name, comment and CRC. */
function gzipHeaderLength(bytes: Uint8Array, totalBytes: number): number {
  const truncated = () => new KernelFormatError(
    bytes.length < totalBytes
      ? `the gzip header is longer than ${bytes.length} bytes, which no kernel's is`
      : `the gzip header is truncated (${totalBytes} bytes in all)`,
  );
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

function inflateError(error: unknown, maxInflatedBytes: number): KernelFormatError {
  if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
    return tooLarge(maxInflatedBytes);
  }
  return new KernelFormatError(`the gzip data is corrupt or truncated (zlib: ${(error as Error).message})`);
}

function tooLarge(maxInflatedBytes: number): KernelFormatError {
  return new KernelFormatError(
    `the gzip data inflates to more than ${maxInflatedBytes} bytes, the most Xen's loader decompresses: it is not a kernel, or not one PV-GRUB can load`,
  );
}

/** Checks the member's trailer (the bytes after the deflate data) against the CRC-32 and length of what it inflated to. */
function checkTrailer(trailer: Uint8Array, crc: number, inflatedBytes: number): void {
  if (trailer.length < TRAILER_BYTES) {
    throw new KernelFormatError(
      `the gzip data is corrupt or truncated: it ends ${trailer.length} bytes into the ${TRAILER_BYTES}-byte trailer (CRC-32 and length) after its compressed data`,
    );
  }
  const view = Buffer.from(trailer.buffer, trailer.byteOffset, TRAILER_BYTES);
  const expectedCrc = view.readUInt32LE(0);
  const expectedLength = view.readUInt32LE(4);
  if (expectedCrc !== crc) {
    throw new KernelFormatError(
      `the gzip data is corrupt: its trailer gives the CRC-32 ${hex(expectedCrc)}, but the data inflates to bytes whose CRC-32 is ${hex(crc)}`,
    );
  }
  if (expectedLength !== inflatedBytes % 2 ** 32) {
    throw new KernelFormatError(`the gzip data is corrupt: its trailer gives the length ${expectedLength} (modulo 2^32), but it inflates to ${inflatedBytes} bytes`);
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/**
 * Inflates the first gzip member of `bytes` and checks its trailer; whatever follows the member
 * is ignored, as zlib's inflate in Xen's loader ignores it (Linux appends the uncompressed size
 * after its gzip payload).
 * @throws KernelFormatError naming what is wrong
 */
export function gunzipFirstMember(bytes: Uint8Array, maxInflatedBytes: number): Uint8Array {
  const start = gzipHeaderLength(bytes, bytes.length);
  let result: { buffer: Buffer; engine: zlib.InflateRaw };
  try {
    result = zlib.inflateRawSync(bytes.subarray(start), { maxOutputLength: maxInflatedBytes, info: true } as zlib.ZlibOptions) as unknown as typeof result;
  } catch (error) {
    throw inflateError(error, maxInflatedBytes);
  }
  const end = start + result.engine.bytesWritten;
  checkTrailer(bytes.subarray(end, end + TRAILER_BYTES), crc32(result.buffer, 0), result.buffer.length);
  return result.buffer;
}

/**
 * The inflated data of the gzip member at [offset, offset + length) of a source, read forward
 * from a stream: never held whole, whatever its size. A read behind the stream's position starts
 * inflating again from the start (the parsers read in ascending batches, so this is rare).
 * `finish()` inflates to the end and checks the trailer; until it has succeeded, nothing read
 * here is known to be intact.
 */
export class GzipMemberReader {
  private pass?: InflatePass;

  constructor(
    private readonly source: KernelSource,
    private readonly offset: number,
    private readonly length: number,
    private readonly maxInflatedBytes: number,
  ) {}

  /** The parsers' reads (see reads.ts), answered in ascending order of offset. */
  readonly read = async (requests: readonly ReadRequest[]): Promise<ReadResults> => {
    const order = requests.map((_, i) => i).sort((a, b) => requests[a].offset - requests[b].offset);
    const bytes: Uint8Array[] = new Array(requests.length);
    let size: number | undefined;
    for (const i of order) {
      const { offset, length } = requests[i];
      const pass = await this.passAt(offset);
      await pass.skipTo(offset);
      bytes[i] = await pass.take(length);
      if (pass.ended) size = pass.position + pass.pendingBytes();
    }
    return { bytes, size };
  };

  /** Inflates the rest of the member and checks its trailer: a KernelFormatError says what is wrong. */
  async finish(): Promise<void> {
    const pass = await this.passAt(this.pass?.position ?? 0);
    try {
      const inflatedBytes = await pass.drain();
      const trailerAt = pass.deflateStart + pass.deflateBytes();
      const trailer = trailerAt >= this.offset + this.length ? new Uint8Array(0)
        : await this.source.read(trailerAt, Math.min(TRAILER_BYTES, this.offset + this.length - trailerAt));
      checkTrailer(trailer, pass.crc, inflatedBytes);
    } finally {
      pass.close();
      this.pass = undefined;
    }
  }

  /** Stops reading the source. */
  close(): void {
    this.pass?.close();
    this.pass = undefined;
  }

  private async passAt(offset: number): Promise<InflatePass> {
    if (this.pass && this.pass.position <= offset) {
      return this.pass;
    }
    this.pass?.close();
    const header = await this.source.read(this.offset, Math.min(this.length, MAX_HEADER_BYTES));
    const deflateStart = this.offset + gzipHeaderLength(header, this.length);
    this.pass = new InflatePass(this.source.stream(deflateStart, this.offset + this.length), deflateStart, this.maxInflatedBytes);
    return this.pass;
  }
}

/** One pass of inflation from the start of the deflate data: forward only, with the CRC-32 of everything inflated so far. */
class InflatePass {
  /** Inflated bytes consumed so far. */
  position = 0;
  crc = 0;
  /** Whether all the data has been inflated. */
  ended = false;
  private pending: Buffer = Buffer.alloc(0);
  private readonly inflate = zlib.createInflateRaw({ chunkSize: 64 * 1024 });
  private readonly output = this.inflate[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  private readonly feeding: Promise<void>;
  private closed = false;

  constructor(compressed: AsyncIterable<Uint8Array>, readonly deflateStart: number, private readonly maxInflatedBytes: number) {
    this.feeding = this.feed(compressed);
    this.feeding.catch(() => undefined); // its failure reaches the reader through the inflate stream
  }

  /** Compressed bytes the deflate data took (known once it has ended). */
  deflateBytes(): number {
    return this.inflate.bytesWritten;
  }

  /**
   * Writes the compressed bytes one chunk at a time, each once the last is consumed, and stops
   * when the deflate data has ended inside a chunk (what follows is the trailer): zlib would
   * otherwise be written past its end.
   */
  private async feed(compressed: AsyncIterable<Uint8Array>): Promise<void> {
    let fed = 0;
    try {
      for await (const chunk of compressed) {
        if (this.closed) return;
        await new Promise<void>((resolve, reject) => this.inflate.write(chunk, (err) => (err ? reject(err) : resolve())));
        fed += chunk.length;
        if (this.inflate.bytesWritten < fed) return;
      }
      this.inflate.end();
    } catch (err) {
      this.inflate.destroy(err as Error);
    }
  }

  private async nextChunk(): Promise<boolean> {
    let next: IteratorResult<Buffer>;
    try {
      next = await this.output.next();
    } catch (error) {
      throw inflateError(error, this.maxInflatedBytes);
    }
    if (next.done) {
      this.ended = true;
      return false;
    }
    if (this.position + this.pending.length + next.value.length > this.maxInflatedBytes) {
      throw tooLarge(this.maxInflatedBytes);
    }
    this.crc = crc32(next.value, this.crc);
    this.pending = this.pending.length === 0 ? next.value : Buffer.concat([this.pending, next.value]);
    return true;
  }

  /** Inflated bytes not yet consumed. */
  pendingBytes(): number {
    return this.pending.length;
  }

  async skipTo(offset: number): Promise<void> {
    while (this.position + this.pending.length < offset) {
      this.position += this.pending.length;
      this.pending = Buffer.alloc(0);
      if (!(await this.nextChunk())) return;
    }
    this.pending = this.pending.subarray(offset - this.position);
    this.position = offset;
  }

  /** The next `length` bytes, fewer at the end of the data. */
  async take(length: number): Promise<Uint8Array> {
    const parts: Buffer[] = [];
    let taken = 0;
    while (taken < length) {
      if (this.pending.length === 0 && !(await this.nextChunk())) break;
      const part = this.pending.subarray(0, length - taken);
      parts.push(part);
      taken += part.length;
      this.pending = this.pending.subarray(part.length);
      this.position += part.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Inflates to the end; returns how many bytes the data inflated to. */
  async drain(): Promise<number> {
    this.position += this.pending.length;
    this.pending = Buffer.alloc(0);
    while (await this.nextChunk()) {
      this.position += this.pending.length;
      this.pending = Buffer.alloc(0);
    }
    await this.feeding;
    return this.position;
  }

  close(): void {
    this.closed = true;
    this.inflate.destroy();
  }
}

/** CRC-32 (ISO-HDLC, as gzip uses it) of `data`, continuing from `crc`; zlib's own when Node has it (20.15 and later). */
export function crc32(data: Uint8Array, crc: number): number {
  const native = (zlib as unknown as { crc32?: (data: Uint8Array, value: number) => number }).crc32;
  return native ? native(data, crc) : crc32InJs(data, crc);
}

let crcTable: Uint32Array | undefined;

function crc32InJs(data: Uint8Array, crc: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
