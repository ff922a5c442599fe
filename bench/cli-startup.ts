/**
 * Benchmark of the command line's start-up: how long `mirage-unikernel-ami --help`, `inspect` and
 * `console` (up to its first check, so no request leaves the machine) take as whole processes,
 * beside `node -e 0`, Node's own start-up. Goal: --help and inspect within 100 ms of Node's start.
 *
 * The CLI is bundled as the package ships it (scripts/bundle-cli.js) into tmp/bench-cli. The commands run interleaved,
 * RUNS times each; the table gives the median and the slowest run. Run: npx ts-node bench/cli-startup.ts
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { cpus, loadavg, tmpdir } from 'os';
import { join } from 'path';
import { EXAMPLE_KERNEL, median, printTable, THIS_ROOT } from './common';

const OUT_DIR = join(THIS_ROOT, 'tmp', 'bench-cli');
const RUNS = 21;
const GOAL_MS = 100;

interface Case {
  readonly label: string;
  readonly args: string[];
  /** Whether the goal applies (console loads the AWS SDK by design). */
  readonly goal: boolean;
}

function compileCli(): string {
  rmSync(OUT_DIR, { recursive: true, force: true });
  const outfile = join(OUT_DIR, 'mirage-unikernel-ami.js');
  const script = `require('esbuild').build(require('./scripts/bundle-cli.js').bundleOptions(${JSON.stringify(outfile)})).catch(() => process.exit(1));`;
  const built = spawnSync(process.execPath, ['-e', script], { cwd: THIS_ROOT, encoding: 'utf8' });
  if (built.status !== 0) {
    throw new Error(`bundling the CLI failed:\n${built.stdout}${built.stderr}`);
  }
  return outfile;
}

/** Wall-clock milliseconds of one whole process. */
function timeProcess(args: string[], env: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env, stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.error) {
    throw result.error;
  }
  return ms;
}

function main(): void {
  const cli = compileCli();
  const scratch = mkdtempSync(join(tmpdir(), 'mua-bench-cli-'));
  // No region anywhere: console stops at its region check, after loading the EC2 client, before any request.
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_CONFIG_FILE: join(scratch, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(scratch, 'none') };
  delete env.AWS_REGION;
  delete env.AWS_DEFAULT_REGION;
  delete env.AWS_PROFILE;

  const cases: Case[] = [
    { label: '`node -e 0` (Node\'s own start-up)', args: ['-e', '0'], goal: false },
    { label: '`mirage-unikernel-ami --help`', args: [cli, '--help'], goal: true },
    { label: '`mirage-unikernel-ami inspect hello.xen`', args: [cli, 'inspect', EXAMPLE_KERNEL], goal: true },
    { label: '`mirage-unikernel-ami console i-...` (loads the EC2 client)', args: [cli, 'console', 'i-0123456789abcdef0'], goal: false },
  ];
  const times = cases.map(() => [] as number[]);
  try {
    for (let run = 0; run < RUNS; run++) {
      cases.forEach((c, i) => times[i].push(timeProcess(c.args, env)));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(OUT_DIR, { recursive: true, force: true });
  }

  const baseline = median(times[0]);
  // Whole-process times grow with whatever else the machine runs: say how busy it was.
  const [load] = loadavg();
  console.log(`CLI start-up, whole process, median of ${RUNS} (Node ${process.version}; load average ${load.toFixed(1)} on ${cpus().length} CPUs):\n`);
  printTable(['command', 'median', 'slowest', 'above `node -e 0`', `goal (≤ ${GOAL_MS} ms above)`], cases.map((c, i) => {
    const m = median(times[i]);
    const above = m - baseline;
    const verdict = !c.goal ? '-' : above <= GOAL_MS ? 'met' : 'over';
    return [c.label, `${m.toFixed(0)} ms`, `${Math.max(...times[i]).toFixed(0)} ms`, i === 0 ? '-' : `${above.toFixed(0)} ms`, verdict];
  }));
}

main();
