/**
 * The file and stream drivers of inspection (inspectKernelFile, inspectKernelSource,
 * inspectKernelFileSync) give exactly what inspectKernel gives for the same bytes, while reading
 * only what classification needs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { gzipSync } from 'zlib';
import { inspectKernel, inspectKernelFile, inspectKernelFileSync, inspectKernelSource, KernelSource } from '../../lib/kernel-inspection';
import { fakeKernel } from '../disk-image/tools';

const KERNELS = path.join(__dirname, '..', 'fixtures', 'kernels');
const HELLO_XEN = path.join(__dirname, '..', '..', 'examples', 'hello', 'hello.xen');
const MIB = 2 ** 20;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'inspect-file-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fixture(name: string): Buffer {
  return readFileSync(path.join(KERNELS, name));
}

/** A source over bytes in memory that counts what is read and streamed. */
function countingSource(bytes: Uint8Array, streamChunk = 64 * 1024): KernelSource & { read_: number; streamed: number; streams: number } {
  const source = {
    sizeBytes: bytes.length,
    read_: 0,
    streamed: 0,
    streams: 0,
    async read(offset: number, length: number) {
      const part = bytes.subarray(offset, offset + length);
      source.read_ += part.length;
      return part;
    },
    async *stream(start: number, end: number) {
      source.streams++;
      for (let at = start; at < end; at += streamChunk) {
        const part = bytes.subarray(at, Math.min(end, at + streamChunk));
        source.streamed += part.length;
        yield part;
      }
    },
  };
  return source;
}

/** The example kernel followed by pseudo-random padding: an ELF whose notes and headers are in its first 14 KB. */
function paddedKernel(bytes: number): Buffer {
  return fakeKernel(bytes, { header: readFileSync(HELLO_XEN), zeroStretch: false });
}

const gz = fixture('pv-x86_64.elf.gz');
const bzImage = fixture('bzimage-gzip-x86_64.bin');
const variants: Array<[string, Buffer]> = [
  ...readdirSync(KERNELS).filter((name) => name !== 'README.md' && name !== 'build.sh' && name !== 'src').map((name): [string, Buffer] => [name, fixture(name)]),
  ['hello.xen', readFileSync(HELLO_XEN)],
  ['gzip missing its last 4 bytes', gz.subarray(0, gz.length - 4)],
  ['gzip missing its trailer', gz.subarray(0, gz.length - 8)],
  ['gzip cut in half', gz.subarray(0, gz.length / 2)],
  ['gzip with a wrong CRC-32', Buffer.concat([gz.subarray(0, gz.length - 8), Buffer.from([1, 2, 3, 4]), gz.subarray(gz.length - 4)])],
  ['gzip followed by other bytes', Buffer.concat([gz, Buffer.from('trailing bytes')])],
  ['gzip inside gzip', gzipSync(gz)],
  ['gzip of a bzImage with a gzip payload', gzipSync(bzImage)],
  ['gzip of junk', gzipSync(fixture('junk.bin'))],
  ['an ELF header only', fixture('pv-x86_64.elf').subarray(0, 64)],
  ['empty', Buffer.alloc(0)],
];

describe.each(variants)('%s', (_, bytes) => {
  test('inspectKernelFile, inspectKernelFileSync and inspectKernelSource agree with inspectKernel', async () => {
    // GIVEN
    const file = path.join(dir, 'kernel');
    writeFileSync(file, bytes);
    const expected = inspectKernel(bytes);

    // WHEN / THEN
    expect(await inspectKernelFile(file)).toEqual(expected);
    expect(inspectKernelFileSync(file)).toEqual(expected);
    expect(await inspectKernelSource(countingSource(bytes, 100))).toEqual(expected);
  });
});

test('every truncation of a gzip kernel and of a gzip bzImage: the stream driver agrees with inspectKernel', async () => {
  for (const bytes of [gz, bzImage]) {
    for (let length = 0; length < bytes.length; length += 5) {
      const truncated = bytes.subarray(0, length);
      expect({ length, inspection: await inspectKernelSource(countingSource(truncated, 37)) }).toEqual({ length, inspection: inspectKernel(truncated) });
    }
  }
});

test('an ELF kernel of 64 MiB: inspection reads its headers and notes, not its bulk', async () => {
  // GIVEN
  const source = countingSource(paddedKernel(64 * MIB));

  // WHEN
  const inspection = await inspectKernelSource(source);

  // THEN
  expect(inspection).toEqual(inspectKernel(readFileSync(HELLO_XEN)));
  expect(source.read_).toBeLessThan(64 * 1024);
  expect(source.streams).toBe(0);
});

test('a gzip kernel of 64 MiB: streamed, its trailer checked, the compressed file read about once', async () => {
  // GIVEN
  const compressed = gzipSync(paddedKernel(64 * MIB), { level: 1 });
  const source = countingSource(compressed);

  // WHEN
  const inspection = await inspectKernelSource(source);

  // THEN accepted; every compressed byte was inflated to check the trailer, and restarts (to read
  // section notes behind the section headers at the end) cost at most one more pass
  expect(inspection).toMatchObject({ bootable: true, compressed: true, guestOs: inspectKernel(readFileSync(HELLO_XEN)).guestOs });
  expect(source.streamed).toBeGreaterThanOrEqual(compressed.length - 64 * 1024);
  expect(source.streamed).toBeLessThan(2 * compressed.length + MIB);
});

test('a gzip kernel said to inflate beyond maxInflatedBytes is refused by the stream driver too', async () => {
  const source = countingSource(gzipSync(paddedKernel(4 * MIB), { level: 1 }));
  const inspection = await inspectKernelSource(source, { maxInflatedBytes: MIB });
  expect(inspection).toMatchObject({ bootable: false, reason: expect.stringMatching(/inflates to more than 1048576 bytes/) });
});
