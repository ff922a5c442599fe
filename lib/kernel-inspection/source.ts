/** A kernel file read by ranges and streamed, never held whole: a local file, or an S3 object in the handler. */
import { createReadStream } from 'fs';
import { open } from 'fs/promises';
import { AsyncReader, ReadResults } from './reads';

/** A kernel file that can be read at any offset and streamed, without being held whole. */
export interface KernelSource {
  /** Size of the file in bytes. */
  readonly sizeBytes: number;
  /** Reads `length` bytes at `offset`; fewer at the end of the file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The bytes from `start` up to `end` (exclusive), in order, a chunk at a time. */
  stream(start: number, end: number): AsyncIterable<Uint8Array>;
}

/** The parsers' reads (see reads.ts) answered from a source, each range read on its own. */
export function sourceReader(source: KernelSource): AsyncReader {
  return async (requests): Promise<ReadResults> => ({
    bytes: await Promise.all(requests.map(({ offset, length }) =>
      offset >= source.sizeBytes || length === 0 ? new Uint8Array(0) : source.read(offset, Math.min(length, source.sizeBytes - offset)))),
    size: source.sizeBytes,
  });
}

/** A local kernel file; close it when done. */
export interface KernelFile extends KernelSource {
  close(): Promise<void>;
}

/** Opens a local kernel file for ranged reads (positioned reads) and streams (1 MiB chunks). */
export async function openKernelFile(path: string): Promise<KernelFile> {
  const handle = await open(path, 'r');
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      // Worded as Node's own file errors are ("CODE: what, syscall 'path'"), so callers report both alike.
      const [code, what] = stat.isDirectory() ? ['EISDIR', 'illegal operation on a directory'] : ['EINVAL', 'not a regular file'];
      throw Object.assign(new Error(`${code}: ${what}, open '${path}'`), { code, syscall: 'open', path });
    }
    return {
      sizeBytes: stat.size,
      async read(offset, length) {
        const buffer = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(buffer, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return buffer.subarray(0, done);
      },
      stream(start, end) {
        return end <= start ? emptyStream() : createReadStream(path, { start, end: end - 1, highWaterMark: 2 ** 20 });
      },
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

async function* emptyStream(): AsyncIterable<Uint8Array> {}
