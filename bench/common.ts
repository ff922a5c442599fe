/**
 * What the benchmarks share: which checkout they measure, how a whole process is timed and its peak
 * memory read, and the kernels they feed it.
 *
 * Every benchmark takes `--root DIR`: the checkout whose code is measured (default: this one). The
 * README's "before" figures were measured with `--root` pointing at a copy of the code before the
 * change, and the "after" figures with this checkout, in the same way.
 */
import { spawnSync, SpawnSyncOptions } from 'child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'fs';
import { join, resolve } from 'path';
import { createCipheriv } from 'crypto';

export const MIB = 2 ** 20;
export const GIB = 2 ** 30;

/** The repository this file belongs to. */
export const THIS_ROOT = resolve(__dirname, '..');

/** `--root DIR` from the command line, else this checkout. */
export function rootFromArgs(argv: readonly string[] = process.argv.slice(2)): string {
  const at = argv.indexOf('--root');
  return at === -1 ? THIS_ROOT : resolve(argv[at + 1]);
}

export function hasFlag(flag: string, argv: readonly string[] = process.argv.slice(2)): boolean {
  return argv.includes(flag);
}

/** The example kernel every benchmark kernel starts with, so that inspection accepts it. */
export const EXAMPLE_KERNEL = join(THIS_ROOT, 'examples', 'hello', 'hello.xen');

/**
 * Deterministic pseudo-random bytes (AES-128-CTR keystream): the bytes at an offset are the same
 * however they are read, so a fake S3 object can be read in ranges and streamed whole and give the
 * same kernel, without holding it.
 */
export function pseudoRandomBytes(offset: number, length: number): Buffer {
  const block = Math.floor(offset / 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(Math.floor(block / 2 ** 32), 8);
  iv.writeUInt32BE(block >>> 0, 12);
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x42), iv);
  const skip = offset % 16;
  return cipher.update(Buffer.alloc(skip + length)).subarray(skip);
}

/** The bytes of the benchmark kernel of `totalBytes`: the example kernel, then pseudo-random padding. */
export function kernelBytesAt(example: Buffer, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  if (offset < example.length) {
    example.copy(out, 0, offset, Math.min(example.length, offset + length));
  }
  const randomFrom = Math.max(offset, example.length);
  if (randomFrom < offset + length) {
    pseudoRandomBytes(randomFrom, offset + length - randomFrom).copy(out, randomFrom - offset);
  }
  return out;
}

/** Writes the example kernel padded with pseudo-random bytes to `totalBytes`, 4 MiB at a time. */
export function writePaddedKernel(path: string, totalBytes: number): void {
  const example = readFileSync(EXAMPLE_KERNEL);
  const fd = openSync(path, 'w');
  try {
    for (let offset = 0; offset < totalBytes; offset += 4 * MIB) {
      writeSync(fd, kernelBytesAt(example, offset, Math.min(4 * MIB, totalBytes - offset)), 0, undefined, offset);
    }
  } finally {
    closeSync(fd);
  }
}

export interface ProcessMeasurement {
  /** Wall-clock milliseconds from spawn to exit. */
  readonly ms: number;
  /** Peak resident set size in KiB, as GNU time reports it (getrusage of the child). */
  readonly maxRssKiB: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command under GNU time and returns its wall time and peak RSS; a failed command fails the benchmark. */
export function measureProcess(command: string, args: readonly string[], options: SpawnSyncOptions = {}): ProcessMeasurement {
  const started = process.hrtime.bigint();
  const child = spawnSync('/usr/bin/time', ['-f', 'BENCH_MAX_RSS_KIB=%M', command, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * MIB,
    ...options,
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const stderr = String(child.stderr);
  if (child.error || child.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (status ${child.status}; is GNU time installed?): ${child.error?.message ?? ''}${stderr}${child.stdout}`);
  }
  const rss = /BENCH_MAX_RSS_KIB=(\d+)\s*$/.exec(stderr);
  if (!rss) {
    throw new Error(`GNU time printed no peak RSS for ${command}: ${stderr}`);
  }
  return { ms, maxRssKiB: Number(rss[1]), stdout: String(child.stdout), stderr: stderr.slice(0, rss.index) };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Prints a Markdown table, as the README quotes the results: the header row, its separator, and a row per list of cells. */
export function printTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
  const printRow = (cells: readonly string[]) => console.log(`| ${cells.join(' | ')} |`);
  printRow(headers);
  printRow(headers.map(() => '---'));
  rows.forEach((row) => printRow(row));
}

export function mib(kib: number): string {
  return `${(kib / 1024).toFixed(0)} MiB`;
}

/** Runs `npm run build` in the measured checkout, so dist/ and the handler bundle are its current code. */
export function buildRoot(root: string): void {
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (build.status !== 0) {
    throw new Error(`npm run build in ${root} failed: ${build.stdout}${build.stderr}`);
  }
}
