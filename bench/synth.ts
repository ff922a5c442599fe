/**
 * Benchmark of synthesis: a CDK app with one stack of N unikernels (the example kernel, each with
 * its own custom resource; the provider and its roles are shared by the stack) synthesized by a
 * fresh `node` process that loads the measured checkout's compiled library (dist/), as `cdk synth`
 * runs an app. Goal: 20 unikernels within 1.5x of 1. Median of 5 runs each.
 *
 * Run: npx ts-node bench/synth.ts [--root DIR] [--no-build]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { buildRoot, hasFlag, measureProcess, median, mib, rootFromArgs } from './common';

const COUNTS = [1, 20];
const RUNS = 5;

function appSource(root: string): string {
  return `
const { App, Stack } = require(${JSON.stringify(join(root, 'node_modules', 'aws-cdk-lib'))});
const { MirageUnikernelAmi, UnikernelKernel, BuildStrategy } = require(${JSON.stringify(join(root, 'dist', 'lib'))});
const [count, strategy, outdir] = process.argv.slice(2);
const app = new App({ outdir });
const stack = new Stack(app, 'Unikernels', { env: { region: 'eu-west-1', account: '123456789012' } });
for (let i = 0; i < Number(count); i++) {
  new MirageUnikernelAmi(stack, 'Hello' + i, {
    kernel: UnikernelKernel.fromFile(${JSON.stringify(join(root, 'examples', 'hello', 'hello.xen'))}),
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
    const rows: string[] = [];
    for (const strategy of ['direct', 'helper']) {
      const times = new Map<number, number>();
      for (const count of COUNTS) {
        const runs = Array.from({ length: RUNS }, (_, i) => {
          const outdir = join(work, `cdk.out-${strategy}-${count}-${i}`);
          const measured = measureProcess(process.execPath, [app, String(count), strategy, outdir]);
          rmSync(outdir, { recursive: true, force: true });
          return measured;
        });
        const ms = median(runs.map((r) => r.ms));
        times.set(count, ms);
        rows.push(`| ${strategy === 'direct' ? 'EBS direct' : 'helper instance'} | ${count} | ${ms.toFixed(0)} ms | ` +
          `${count === 1 ? '1.00x' : `${(ms / times.get(1)!).toFixed(2)}x`} | ${mib(Math.max(...runs.map((r) => r.maxRssKiB)))} |`);
      }
    }
    console.log(`Synthesis of one stack of N unikernels by ${root}'s dist/, whole 'node app.js' process, median of ${RUNS}, Node ${process.version}\n`);
    console.log('| strategy | unikernels | synth time | vs 1 unikernel (goal <= 1.5x at 20) | peak RSS |');
    console.log('| --- | --- | --- | --- | --- |');
    rows.forEach((row) => console.log(row));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
