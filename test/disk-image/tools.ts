/** The real tools that own the formats the disk image writer produces, run as child processes. */
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { DiskBlock, DiskImage } from '../../lib/disk-image';
import { pygrubEntries } from '../fixtures/pygrub';

export interface ToolResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool; a missing tool fails the test loudly instead of skipping it. */
export function runTool(command: string, args: string[]): ToolResult {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) {
    throw new Error(`Cannot run ${command} (${result.error.message}); install it (Debian packages e2fsprogs, file, coreutils, diffutils, python3).`);
  }
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** `e2fsck -fn`: forced full check, read-only. */
export function e2fsck(image: string): ToolResult {
  return runTool('e2fsck', ['-fn', image]);
}

export function debugfs(image: string, request: string): ToolResult {
  return runTool('debugfs', ['-R', request, image]);
}

/** `dumpe2fs -h` as a map of field name to value. */
export function superblockFields(image: string): Map<string, string> {
  const { stdout } = runTool('dumpe2fs', ['-h', image]);
  const fields = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^([^:]+):\s*(.*)$/.exec(line);
    if (match) {
      fields.set(match[1].trim(), match[2].trim());
    }
  }
  return fields;
}

/**
 * Python that lists a file's data regions (SEEK_DATA/SEEK_HOLE): reading only them, the helpers below
 * handle a 16 GiB sparse disk as fast as its data; holes read as zero.
 */
const DATA_REGIONS_PY = `
import hashlib, os, sys
def data_regions(fd, pos, stop):
    while pos < stop:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return
        if start >= stop:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), stop)
        yield start, end
        pos = end
`;

function runPython(body: string, args: string[]): string {
  const result = runTool('python3', ['-c', DATA_REGIONS_PY + body, ...args]);
  if (result.status !== 0) {
    throw new Error(`python3 helper failed on ${args.join(' ')}: ${result.stderr}`);
  }
  return result.stdout;
}

/** Copies `length` bytes at `offset` of `from` into a new sparse file of that length. */
export function extractRegion(from: string, to: string, offset: number, length: number): void {
  runPython(`
src, dst, offset, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fin = os.open(src, os.O_RDONLY)
fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fout, length)
for start, end in data_regions(fin, offset, offset + length):
    for pos in range(start, end, 1 << 22):
        os.pwrite(fout, os.pread(fin, min(1 << 22, end - pos), pos), pos - offset)
`, [from, to, String(offset), String(length)]);
}

/** Whether the file's bytes equal `expected`, read in chunks (no whole-file copy in memory). */
export function fileEquals(path: string, expected: Uint8Array): boolean {
  const chunk = Buffer.alloc(4 * 2 ** 20);
  const fd = openSync(path, 'r');
  try {
    let offset = 0;
    for (;;) {
      const read = readSync(fd, chunk, 0, chunk.length, offset);
      if (read === 0) {
        return offset === expected.length;
      }
      if (offset + read > expected.length || !chunk.subarray(0, read).equals(expected.subarray(offset, offset + read))) {
        return false;
      }
      offset += read;
    }
  } finally {
    closeSync(fd);
  }
}

/** Indices of the non-zero blocks of a file, with each block's SHA-256. */
export function scanNonZeroBlocks(path: string, blockSize: number): Map<number, string> {
  const stdout = runPython(`
fd, bs = os.open(sys.argv[1], os.O_RDONLY), int(sys.argv[2])
found = {}
for start, end in data_regions(fd, 0, os.fstat(fd).st_size):
    for index in range(start // bs, (end + bs - 1) // bs):
        block = os.pread(fd, bs, index * bs)
        if index not in found and block.count(0) != len(block):
            found[index] = hashlib.sha256(block).hexdigest()
for index in sorted(found):
    print(index, found[index])
`, [path, String(blockSize)]);
  return new Map(stdout.trim().split('\n').filter(Boolean).map((line) => {
    const [index, digest] = line.split(' ');
    return [Number(index), digest];
  }));
}

/**
 * Each block's SHA-256 (hex) by its index, the form scanNonZeroBlocks gives for a file: blocks made
 * in memory, streamed or scanned compare as equal maps. A sync iterable gives the map at once, an
 * async one a promise of it.
 */
export function blockDigests(blocks: Iterable<DiskBlock>): Map<number, string>;
export function blockDigests(blocks: AsyncIterable<DiskBlock>): Promise<Map<number, string>>;
export function blockDigests(blocks: Iterable<DiskBlock> | AsyncIterable<DiskBlock>): Map<number, string> | Promise<Map<number, string>>;
export function blockDigests(blocks: Iterable<DiskBlock> | AsyncIterable<DiskBlock>): Map<number, string> | Promise<Map<number, string>> {
  const digests = new Map<number, string>();
  const add = (block: DiskBlock) => digests.set(block.index, createHash('sha256').update(block.data).digest('hex'));
  if (Symbol.asyncIterator in blocks) {
    return (async () => {
      for await (const block of blocks) {
        add(block);
      }
      return digests;
    })();
  }
  for (const block of blocks) {
    add(block);
  }
  return digests;
}

/** Non-zero bytes of a file. */
export function countNonZeroBytesOfFile(path: string): number {
  return Number(runPython(`
fd = os.open(sys.argv[1], os.O_RDONLY)
total = 0
for start, end in data_regions(fd, 0, os.fstat(fd).st_size):
    for pos in range(start, end, 1 << 22):
        data = os.pread(fd, min(1 << 22, end - pos), pos)
        total += len(data) - data.count(0)
print(total)
`, [path]));
}

/** A fresh directory under the OS temp dir, and a function that removes it. */
export function makeTempDir(): { dir: string; path: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'disk-image-test-'));
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface FakeKernelOptions {
  /**
   * Bytes the kernel starts with, e.g. a real ELF whose headers and notes inspection reads; the
   * pseudo-random bytes follow them.
   * @default none
   */
  readonly header?: Uint8Array;
  /**
   * Whether a kernel over 4 MiB has the all-zero 1 MiB stretch; without it the bytes do not compress
   * (staging tests count the parts of the gzip).
   * @default true
   */
  readonly zeroStretch?: boolean;
}

/**
 * Pseudo-random kernel bytes with an all-zero 1 MiB stretch (kernels have zero-filled sections),
 * same for the same size and options.
 */
export function fakeKernel(bytes: number, options: FakeKernelOptions = {}): Buffer {
  const kernel = Buffer.alloc(bytes, 0x5a);
  const words = new Uint32Array(kernel.buffer, kernel.byteOffset, Math.floor(bytes / 4));
  let state = (bytes ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    words[i] = state >>> 0;
  }
  if (options.zeroStretch !== false && bytes > 4 * 2 ** 20) {
    kernel.fill(0, 2 * 2 ** 20, 3 * 2 ** 20);
  }
  if (options.header) {
    kernel.set(options.header);
  }
  return kernel;
}

/** `length` bytes of a file at `offset`. */
export function readBytes(path: string, offset: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, bytes, 0, length, offset);
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/**
 * A sparse kernel file of `bytes` bytes: zeros (holes) with a marker at its start, at every 128 MiB
 * and in its last byte, so that a copy that loses or moves a stretch is caught.
 */
export function writeSparseKernel(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, bytes);
    for (let offset = 0; offset < bytes - 16; offset += 128 * 2 ** 20) {
      writeSync(fd, Buffer.from(`marker@${offset}`), 0, undefined, offset);
    }
    writeSync(fd, Buffer.from([0xff]), 0, 1, bytes - 1);
  } finally {
    closeSync(fd);
  }
}

/** `cmp -s`: whether two files have the same bytes, compared by coreutils' cmp. */
export function cmp(a: string, b: string): boolean {
  const result = runTool('cmp', ['-s', a, b]);
  if (result.status > 1) {
    throw new Error(`cmp ${a} ${b} failed: ${result.stderr}`);
  }
  return result.status === 0;
}

/**
 * Writes blocks into a fresh sparse file of `sizeBytes`, each at its index times `blockSize`,
 * shifted down by `skipBytes` (to cut a partition out of the disk); what falls before it is left out.
 */
export function reassemble(blocks: Iterable<DiskBlock>, file: string, sizeBytes: number, blockSize: number, skipBytes = 0): void {
  const fd = openSync(file, 'w');
  try {
    ftruncateSync(fd, sizeBytes);
    for (const block of blocks) {
      const start = block.index * blockSize - skipBytes;
      const from = Math.max(0, -start);
      if (from < block.data.length) {
        writeSync(fd, block.data, from, block.data.length - from, start + from);
      }
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The disk boots, as far as the tools that own the formats can tell: e2fsck finds nothing to fix in
 * `filesystem` (the whole disk, or the partition cut out of it), debugfs reads the kernel back byte
 * for byte and menu.lst as the image has it, and Xen's pygrub picks that kernel with `kernelArgs`.
 */
export function expectBootableDisk(filesystem: string, image: Pick<DiskImage, 'kernelPath' | 'menuLst'>, kernel: Uint8Array, kernelArgs: string): void {
  const check = e2fsck(filesystem);
  // e2fsck -n exits 0 only when it found nothing to fix; the output says what it found otherwise.
  expect({ status: check.status, output: check.stdout }).toEqual({ status: 0, output: expect.stringContaining('Pass 5') });
  const temp = makeTempDir();
  try {
    const kernelCopy = temp.path('kernel-read-back');
    expect(debugfs(filesystem, `dump ${image.kernelPath} ${kernelCopy}`).status).toBe(0);
    expect(readFileSync(kernelCopy).equals(kernel)).toBe(true);
  } finally {
    temp.remove();
  }
  const menuLst = debugfs(filesystem, 'cat /boot/grub/menu.lst');
  expect({ status: menuLst.status, text: menuLst.stdout }).toEqual({ status: 0, text: image.menuLst });
  expect(pygrubEntries(filesystem).map(({ kernel: path, args }) => ({ kernel: path, args }))).toEqual([{ kernel: image.kernelPath, args: kernelArgs }]);
}
