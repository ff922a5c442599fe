/**
 * Benchmark of the disk image writer against mke2fs on the same files.
 *
 * For kernels of 1, 16, 64 and 256 MiB of random bytes: the writer (read the kernel file, build the
 * image, write it as a sparse file) runs in a fresh Node process each time, so its peak RSS is its
 * own; `mke2fs -q -t ext2 -b 4096 -d TREE FILE 1G` builds a 1 GiB sparse image of the same tree under
 * /usr/bin/time -v. The child is this file bundled by esbuild, as the writer ships. Prints a markdown table. Run: npx ts-node bench/disk-image.ts
 */
import { spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { buildSync } from 'esbuild';
import { buildDiskImage, writeSparseFile } from '../lib/disk-image';

const MIB = 2 ** 20;
const KERNEL_SIZES_MIB = [1, 16, 64, 256];
const RUNS = 3;
const NAME = 'bench';
const BLOCK_SIZE = 4096;

interface Measurement {
  /** Wall-clock milliseconds of the work (for the writer: without Node's own start-up). */
  readonly ms: number;
  /** Peak resident set size in KiB. */
  readonly maxRssKiB: number;
}

/** Child mode: `disk-image.ts child KERNEL OUT` builds and writes one image, then prints its measurement. */
function runChild(kernelFile: string | undefined, outFile: string | undefined): void {
  const started = process.hrtime.bigint();
  if (kernelFile && outFile) {
    const image = buildDiskImage({ kernel: readFileSync(kernelFile), name: NAME });
    writeSparseFile(image, outFile);
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(JSON.stringify({ ms, maxRssKiB: process.resourceUsage().maxRSS }));
}

/**
 * Bundles this file with esbuild into plain JavaScript, as the Lambda handler and the CLI ship the
 * writer, so the child's start-up time and RSS are Node's, not ts-node's.
 */
function bundleChild(work: string): string {
  const bundle = join(work, 'bench-child.js');
  buildSync({ entryPoints: [__filename], outfile: bundle, bundle: true, platform: 'node', target: 'node20', logLevel: 'error' });
  return bundle;
}

/** Runs the bundled writer in a fresh Node process; without files the child only loads the writer (baseline RSS). */
function measureWriter(bundle: string, kernelFile?: string, outFile?: string): Measurement & { processMs: number } {
  if (outFile) {
    rmSync(outFile, { force: true });
  }
  const started = process.hrtime.bigint();
  const args = [bundle, 'child', ...(kernelFile && outFile ? [kernelFile, outFile] : [])];
  const child = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const processMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (child.status !== 0) {
    throw new Error(`writer child failed: ${child.stderr}`);
  }
  return { ...JSON.parse(child.stdout), processMs };
}

function measureMke2fs(tree: string, outFile: string): Measurement {
  rmSync(outFile, { force: true });
  const started = process.hrtime.bigint();
  const child = spawnSync('/usr/bin/time', ['-v', 'mke2fs', '-q', '-t', 'ext2', '-b', String(BLOCK_SIZE), '-d', tree, outFile, '1G'], {
    encoding: 'utf8',
  });
  if (child.error || child.status !== 0) {
    throw new Error(`mke2fs under /usr/bin/time failed (are e2fsprogs and time installed?): ${child.error?.message ?? child.stderr}`);
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const maxRss = /Maximum resident set size \(kbytes\): (\d+)/.exec(child.stderr)?.[1];
  return { ms, maxRssKiB: Number(maxRss) };
}

function writeRandomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < bytes; written += MIB) {
      writeSync(fd, randomBytes(Math.min(MIB, bytes - written)));
    }
  } finally {
    closeSync(fd);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function main(): void {
  const work = mkdtempSync(join(tmpdir(), 'disk-image-bench-'));
  try {
    const bundle = bundleChild(work);
    const baseline = measureWriter(bundle);
    const rows: string[] = [];
    for (const sizeMiB of KERNEL_SIZES_MIB) {
      const tree = join(work, `tree-${sizeMiB}`);
      mkdirSync(join(tree, 'boot', 'grub'), { recursive: true });
      const kernelFile = join(tree, 'boot', `${NAME}.xen`);
      writeRandomFile(kernelFile, sizeMiB * MIB);
      const menuLst = buildDiskImage({ kernel: new Uint8Array(1), name: NAME }).menuLst;
      writeFileSync(join(tree, 'boot', 'grub', 'menu.lst'), menuLst);

      const writer = Array.from({ length: RUNS }, () => measureWriter(bundle, kernelFile, join(work, 'writer.img')));
      const mke2fs = Array.from({ length: RUNS }, () => measureMke2fs(tree, join(work, 'mke2fs.img')));
      const writerMs = median(writer.map((m) => m.ms));
      const writerProcessMs = median(writer.map((m) => m.processMs));
      const mke2fsMs = median(mke2fs.map((m) => m.ms));
      const writerRssMiB = Math.max(...writer.map((m) => m.maxRssKiB)) / 1024;
      const mke2fsRssMiB = Math.max(...mke2fs.map((m) => m.maxRssKiB)) / 1024;
      rows.push(
        `| ${sizeMiB} MiB | ${writerMs.toFixed(0)} ms (${writerProcessMs.toFixed(0)} ms) | ${mke2fsMs.toFixed(0)} ms | ` +
        `${(writerMs / mke2fsMs).toFixed(2)}x (${(writerProcessMs / mke2fsMs).toFixed(2)}x) | ${writerRssMiB.toFixed(0)} MiB | ` +
        `${(writerRssMiB - baseline.maxRssKiB / 1024).toFixed(0)} MiB | ${(writerRssMiB / sizeMiB).toFixed(2)}x | ${mke2fsRssMiB.toFixed(1)} MiB |`,
      );
      rmSync(tree, { recursive: true, force: true });
    }
    console.log(`Disk image writer vs mke2fs, 1 GiB volume, ${BLOCK_SIZE}-byte blocks, median of ${RUNS} runs, Node ${process.version}`);
    console.log(`Node baseline (bundled writer loaded, nothing built): peak RSS ${(baseline.maxRssKiB / 1024).toFixed(0)} MiB\n`);
    console.log('| kernel | writer time (whole child process) | mke2fs time | time ratio (whole process) | writer peak RSS | writer RSS above baseline | writer RSS / kernel | mke2fs peak RSS |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    rows.forEach((row) => console.log(row));
    console.log('\nWriter time: reading the kernel file, building the image and writing the sparse file, timed inside the child;');
    console.log('in parentheses the whole child process, including Node start-up. mke2fs: the whole process (spawned under /usr/bin/time -v, which gives its peak RSS).');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child') {
  runChild(process.argv[3], process.argv[4]);
} else {
  main();
}
