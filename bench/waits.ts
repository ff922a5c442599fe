/**
 * How much time the handler adds to AWS's own, and how many Lambda invocations a build takes, for
 * both strategies, before and after issue 18 (an isComplete that looks again within its invocation,
 * and the waiter's 10-second interval).
 *
 * Each build is one Create played through the real CDK provider framework (its runtime code and the
 * waiter state machine the stack synthesizes: test/fixtures/provider-framework.ts) on the fake AWS
 * account and its simulated clock (test/fixtures/fake-aws; its state times are in world.ts, each
 * with its source or marked as an assumption). test/fixtures/wait-timeline.ts measures each wait:
 * AWS's own time to reach a state, and the time from then to the handler's first request that acts
 * on it. Real time plays no part: the figures are simulated time, the same on every machine.
 *
 * AWS's state times are not multiples of the polling interval, and where in the interval a state
 * changes decides how long the handler takes to see it. So every build runs SWEEP_BUILDS times with
 * other state times (wait-timeline.ts sweepSettings): the table shows the mean and the worst.
 *
 * "Before" is the handler and provider timing of the commit BASELINE (or `--before REV`), taken from
 * git into a temporary directory and measured with this checkout's wait-timeline.ts (which uses only
 * fixture APIs that commit has); "after" is this checkout. Run: npx ts-node bench/waits.ts
 */
import { execFileSync, spawnSync } from 'child_process';
import { copyFileSync, mkdtempSync, rmSync, symlinkSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { hasFlag, MIB, printTable, THIS_ROOT } from './common';
import type { WaitTimeline } from '../test/fixtures/wait-timeline';

/** The last commit before issue 18 changed how the handler waits. */
const BASELINE = '7273e5f5c85255759f7db513c1ab84e920cd2fe1';
const STRATEGIES = ['helper-instance', 'ebs-direct'] as const;

interface Measured {
  readonly queryIntervalSeconds: number;
  readonly timelines: WaitTimeline[];
}

/** In the child: every build of the sweep, on the fixtures and handler under `root`. */
async function child(root: string): Promise<void> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { FakeAws } = require(join(root, 'test/fixtures/fake-aws')) as typeof import('../test/fixtures/fake-aws');
  const { measureWaits, sweepSettings, SWEEP_BUILDS } = require(join(root, 'test/fixtures/wait-timeline')) as typeof import('../test/fixtures/wait-timeline');
  const { OPERATION_TIMING } = require(join(root, 'lib/unikernel-ami/types')) as typeof import('../lib/unikernel-ami/types');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const aws = new FakeAws();
  // The handler's one structured line per step is not what this measures.
  console.log = () => undefined;
  const timelines: WaitTimeline[] = [];
  for (const strategy of STRATEGIES) {
    for (let k = 0; k < SWEEP_BUILDS; k++) {
      timelines.push(await measureWaits(aws, strategy, sweepSettings(k)));
    }
  }
  const measured: Measured = { queryIntervalSeconds: OPERATION_TIMING.queryIntervalSeconds, timelines };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(measured)}\n`);
}

/** Runs the child on `root` in a fresh Node process (the fake stubs module-scope SDK clients). */
function measure(root: string): Measured {
  const result = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', __filename, '--child', root], {
    cwd: THIS_ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * MIB,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const line = /BENCH_RESULT (.*)/.exec(result.stdout);
  if (result.status !== 0 || !line) {
    throw new Error(`the wait measurement of ${root} failed: ${result.stdout.slice(-2000)}${result.stderr.slice(-4000)}`);
  }
  return JSON.parse(line[1]) as Measured;
}

/** The baseline's lib and tests (fixtures and what they import) from git, with this checkout's node_modules, handler asset and wait-timeline.ts. */
function baselineTree(rev: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'waits-bench-'));
  try {
    const archive = execFileSync('git', ['-C', THIS_ROOT, 'archive', rev, 'package.json', 'tsconfig.json', 'lib', 'test'], { maxBuffer: 256 * MIB, stdio: ['ignore', 'pipe', 'pipe'] });
    execFileSync('tar', ['-x', '-C', dir], { input: archive });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    console.log(`(no "before" figures: git archive ${rev} failed: ${(err as Error).message.split('\n')[0]})\n`);
    return undefined;
  }
  symlinkSync(join(THIS_ROOT, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(THIS_ROOT, 'assets'), join(dir, 'assets'));
  copyFileSync(join(THIS_ROOT, 'test/fixtures/wait-timeline.ts'), join(dir, 'test/fixtures/wait-timeline.ts'));
  return dir;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

function report(label: string, measured: Measured): void {
  const interval = measured.queryIntervalSeconds * 1000;
  console.log(`\n${label}: the waiter polls isComplete every ${measured.queryIntervalSeconds} s\n`);
  for (const strategy of STRATEGIES) {
    const builds = measured.timelines.filter((t) => t.strategy === strategy);
    const failed = builds.filter((t) => t.status !== 'SUCCESS').length;
    if (failed > 0) {
      throw new Error(`${label}: ${failed} ${strategy} builds failed`);
    }
    const rows = builds[0].waits.map((w, i) => {
      const aws = builds.map((b) => b.waits[i].awsMs);
      const added = builds.map((b) => b.waits[i].addedMs);
      const worst = Math.max(...added);
      return [w.name, `${seconds(Math.min(...aws))} - ${seconds(Math.max(...aws))}`, seconds(mean(added)), `${seconds(worst)}${worst <= interval ? '' : ', over one interval'}`];
    });
    const handler = builds.map((b) => b.handlerMs);
    const invocations = builds.map((b) => b.invocations);
    rows.push([
      'whole build (onEvent work included)', `${seconds(Math.min(...builds.map((b) => b.awsMs)))} - ${seconds(Math.max(...builds.map((b) => b.awsMs)))}`,
      seconds(mean(handler)), seconds(Math.max(...handler)),
    ]);
    console.log(`${strategy}: ${builds.length} builds; Lambda invocations (onEvent + isComplete) per build: mean ${mean(invocations).toFixed(1)}, ${Math.min(...invocations)} - ${Math.max(...invocations)}\n`);
    printTable(['wait', "AWS's own time", 'handler adds (mean)', `handler adds (worst; goal <= ${measured.queryIntervalSeconds} s per wait)`], rows);
    console.log('');
  }
}

function main(): void {
  const at = process.argv.indexOf('--before');
  const rev = at === -1 ? BASELINE : process.argv[at + 1];
  console.log('Time the handler adds to AWS\'s own state times, one Create per row of the sweep, on the fake AWS account');
  console.log('and its simulated clock through the real CDK provider framework (simulated time: no machine dependence).');
  const before = hasFlag('--no-before') ? undefined : baselineTree(rev);
  let beforeMeasured: Measured | undefined;
  try {
    beforeMeasured = before ? measure(before) : undefined;
  } finally {
    if (before) {
      rmSync(before, { recursive: true, force: true });
    }
  }
  const after = measure(THIS_ROOT);
  if (beforeMeasured) {
    report(`Before (${rev.slice(0, 7)})`, beforeMeasured);
  }
  report('After (this checkout)', after);
  if (beforeMeasured) {
    const rows = STRATEGIES.map((strategy) => {
      const b = beforeMeasured!.timelines.filter((t) => t.strategy === strategy);
      const a = after.timelines.filter((t) => t.strategy === strategy);
      const ratio = mean(a.map((t) => t.invocations)) / mean(b.map((t) => t.invocations));
      return [strategy, seconds(mean(b.map((t) => t.handlerMs))), seconds(mean(a.map((t) => t.handlerMs))),
        mean(b.map((t) => t.invocations)).toFixed(1), mean(a.map((t) => t.invocations)).toFixed(1), `${ratio.toFixed(2)}x${ratio <= 2 ? '' : ', over 2x'}`,
        mean(b.map((t) => t.requests)).toFixed(0), mean(a.map((t) => t.requests)).toFixed(0)];
    });
    console.log('Before and after, mean per build\n');
    printTable(['strategy', 'handler adds, before', 'after', 'invocations, before', 'after', 'after / before (goal <= 2x)', 'AWS requests, before', 'after'], rows);
  }
}

if (process.argv[2] === '--child') {
  child(process.argv[3]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
