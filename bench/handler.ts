/**
 * Benchmark of the Lambda handler's build step (onEvent of a Create) against an in-process FAKE
 * of S3, EBS and EC2 (bench/handler-child.ts; nothing leaves the process, so network time and AWS
 * throttling are NOT measured):
 *
 * - EBS direct: blocks and bytes sent for kernels of 1 MiB to 1 GiB, whole-volume and MBR layouts,
 *   against the kernel's own 512 KiB blocks (goal: at most 1.1x), and the EBS calls made.
 * - Peak memory of the process (Node, the bundled handler and SDK, and the build) for both
 *   strategies, up to a 1 GiB kernel (goal: a fixed bound whatever the kernel's size). The helper
 *   build is measured up to the end of staging (its first EC2 call is where the fake stops it).
 *
 * Each scenario runs in a fresh Node process: the handler of the measured checkout bundled by
 * esbuild, as the Lambda runs it. Run: npx ts-node bench/handler.ts [--root DIR]
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { buildSync } from 'esbuild';
import { EXAMPLE_KERNEL, MIB, mib, printTable, rootFromArgs } from './common';
import type { ChildResult, Scenario } from './handler-child';

const EBS_BLOCK = 512 * 1024;
const DIRECT_SIZES_MIB = [1, 16, 64, 256, 1024];
const HELPER_SIZES_MIB = [1, 64, 256, 1024];

/** Bundles the measured checkout's handler with the fake into one script. */
function bundle(root: string, work: string): string {
  const entry = join(work, 'entry.ts');
  writeFileSync(entry, [
    `import { onEvent } from ${JSON.stringify(join(root, 'lib/unikernel-ami/handler/index'))};`,
    `import { clients } from ${JSON.stringify(join(root, 'lib/unikernel-ami/handler/clients'))};`,
    `import { main } from ${JSON.stringify(join(__dirname, 'handler-child'))};`,
    'main(onEvent as never, clients as never).catch((err) => { console.error(err); process.exit(1); });',
  ].join('\n'));
  const outfile = join(work, 'child.js');
  buildSync({ entryPoints: [entry], outfile, bundle: true, platform: 'node', target: 'node20', logLevel: 'error' });
  return outfile;
}

function run(child: string, scenario: Scenario): ChildResult {
  const result = spawnSync(process.execPath, [child, JSON.stringify(scenario)], {
    encoding: 'utf8',
    maxBuffer: 16 * MIB,
    env: { ...process.env, BENCH_EXAMPLE_KERNEL: EXAMPLE_KERNEL, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' },
  });
  const line = /BENCH_RESULT (.*)/.exec(result.stdout);
  if (result.status !== 0 || !line) {
    throw new Error(`handler child failed for ${JSON.stringify(scenario)}: ${result.stdout}${result.stderr}`);
  }
  return JSON.parse(line[1]) as ChildResult;
}

/** The smallest whole number of GiB that holds the kernel with room for the filesystem. */
function volumeFor(kernelMiB: number): number {
  return Math.max(1, Math.ceil((kernelMiB + 64) / 1024));
}

function main(): void {
  const root = rootFromArgs();
  const work = mkdtempSync(join(tmpdir(), 'handler-bench-'));
  try {
    const child = bundle(root, work);
    const directRows: string[][] = [];
    const memoryRows: string[][] = [];
    for (const sizeMiB of DIRECT_SIZES_MIB) {
      for (const layout of ['whole', 'mbr'] as const) {
        const volumeSizeGiB = volumeFor(sizeMiB);
        const result = run(child, { strategy: 'ebs-direct', kernelBytes: sizeMiB * MIB, layout, volumeSizeGiB });
        if (result.error) {
          throw new Error(`the direct build of a ${sizeMiB} MiB kernel failed: ${result.error}`);
        }
        const kernelBlocks = Math.ceil((sizeMiB * MIB) / EBS_BLOCK);
        const ratio = result.bytesSent / (kernelBlocks * EBS_BLOCK);
        directRows.push([
          `${sizeMiB} MiB`, layout, `${volumeSizeGiB} GiB`, `${kernelBlocks}`, `${result.blocksSent}`, `${(result.bytesSent / MIB).toFixed(1)} MiB`,
          `${ratio.toFixed(2)}x${ratio <= 1.1 ? '' : ', over'}`, `${result.ebsCalls}`, `${result.s3Calls}`,
        ]);
        if (layout === 'whole') {
          memoryRows.push([`${sizeMiB} MiB`, 'EBS direct', mib(result.maxRssKiB), `${(result.ms / 1000).toFixed(1)} s`, `${(result.s3BytesRead / MIB).toFixed(0)} MiB`]);
        }
      }
    }
    for (const sizeMiB of HELPER_SIZES_MIB) {
      const result = run(child, { strategy: 'helper-instance', kernelBytes: sizeMiB * MIB, layout: 'whole', volumeSizeGiB: volumeFor(sizeMiB) });
      if (!result.staged) {
        throw new Error(`the helper build of a ${sizeMiB} MiB kernel did not finish staging: ${result.error}`);
      }
      memoryRows.push([
        `${sizeMiB} MiB`, `helper instance (to the end of staging; ${(result.stagedBytes / MIB).toFixed(0)} MiB staged)`,
        mib(result.maxRssKiB), `${(result.ms / 1000).toFixed(1)} s`, `${(result.s3BytesRead / MIB).toFixed(0)} MiB`,
      ]);
    }
    console.log(`Handler of ${root} (onEvent of a Create, bundled by esbuild) against an in-process FAKE of S3, EBS and EC2;`);
    console.log(`no request leaves the process. Node ${process.version}, one fresh process per row.\n`);
    console.log('EBS direct: what is sent\n');
    printTable(
      ['kernel', 'layout', 'volume', 'kernel blocks (512 KiB)', 'blocks sent', 'bytes sent', 'sent / kernel blocks (goal <= 1.1x)', 'EBS calls', 'S3 calls'],
      directRows,
    );
    console.log('\nPeak memory of the whole process (Node + handler + SDK + build)\n');
    printTable(['kernel', 'build', 'peak RSS', 'time', 'kernel bytes read from S3'], memoryRows);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
