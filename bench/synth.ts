/**
 * Benchmark of synthesis: a CDK app with one stack of N unikernels of one kernel file (each with
 * its own custom resource; the provider and its roles are shared by the stack) synthesized by a
 * fresh `node` process that loads the measured checkout's compiled library (dist/), as `cdk synth`
 * runs an app. Goal: 20 unikernels within 1.5x of 1. Median of 7 runs each, with the example
 * kernel and with it padded to 64 MiB (where reading the kernel, once or twenty times, shows).
 *
 * Run: npx ts-node bench/synth.ts [--root DIR] [--no-build]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { buildRoot, EXAMPLE_KERNEL, hasFlag, measureProcess, median, MIB, mib, printTable, ProcessMeasurement, rootFromArgs, writePaddedKernel } from './common';

const COUNTS = [1, 20];
const RUNS = 7;

function appSource(root: string): string {
  return `
const { App, Stack } = require(${JSON.stringify(join(root, 'node_modules', 'aws-cdk-lib'))});
const { MirageUnikernelAmi, UnikernelKernel, BuildStrategy } = require(${JSON.stringify(join(root, 'dist', 'lib'))});
const [count, strategy, outdir, kernel] = process.argv.slice(2);
const app = new App({ outdir });
const stack = new Stack(app, 'Unikernels', { env: { region: 'eu-west-1', account: '123456789012' } });
for (let i = 0; i < Number(count); i++) {
  new MirageUnikernelAmi(stack, 'Hello' + i, {
    kernel: UnikernelKernel.fromFile(kernel),
    name: 'hello' + i,
    buildStrategy: strategy === 'direct' ? BuildStrategy.ebsDirect() : BuildStrategy.helperInstance(),
  });
}
app.synth();
`;
}

function main(): void {
  const root = rootFromArgs();
  if (!hasFlag('--no-build')) {
    buildRoot(root);
  }
  const work = mkdtempSync(join(tmpdir(), 'synth-bench-'));
  try {
    const app = join(work, 'app.js');
    writeFileSync(app, appSource(root));
    const padded = join(work, 'padded.xen');
    writePaddedKernel(padded, 64 * MIB);
    const rows: string[][] = [];
    for (const [kernelName, kernel] of [['example (14 KB)', EXAMPLE_KERNEL], ['64 MiB', padded]]) {
      for (const strategy of ['direct', 'helper']) {
        // 1 and N alternate, so that a busy machine slows both alike.
        const runs = new Map<number, ProcessMeasurement[]>(COUNTS.map((count) => [count, []]));
        for (let i = 0; i < RUNS; i++) {
          for (const count of COUNTS) {
            const outdir = join(work, `cdk.out-${strategy}-${count}-${i}`);
            runs.get(count)!.push(measureProcess(process.execPath, [app, String(count), strategy, outdir, kernel]));
            rmSync(outdir, { recursive: true, force: true });
          }
        }
        const one = median(runs.get(1)!.map((r) => r.ms));
        for (const count of COUNTS) {
          const ms = median(runs.get(count)!.map((r) => r.ms));
          rows.push([kernelName, strategy === 'direct' ? 'EBS direct' : 'helper instance', `${count}`, `${ms.toFixed(0)} ms`,
            `${(ms / one).toFixed(2)}x`, mib(Math.max(...runs.get(count)!.map((r) => r.maxRssKiB)))]);
        }
      }
    }
    console.log(`Synthesis of one stack of N unikernels by ${root}'s dist/, whole 'node app.js' process, median of ${RUNS}, Node ${process.version}\n`);
    printTable(['kernel', 'strategy', 'unikernels', 'synth time', 'vs 1 unikernel (goal <= 1.5x at 20)', 'peak RSS'], rows);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
