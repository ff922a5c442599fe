/**
 * The published package, as a user gets it: what the tarball holds, and a fresh `cdk init` app that
 * installs it with the newest aws-cdk-lib and constructs from the npm registry, and another with the
 * lowest versions the peerDependencies allow. Both must keep one copy of aws-cdk-lib and of constructs,
 * install nothing else for the package, type-check the README's usage with TypeScript 7 and the
 * package's typings, and synthesize it and run the CLI and the subpath exports on every Node.js major
 * of `engines` (20, 22, 24; Node binaries from the npm registry).
 * Needs the npm registry (CI reaches it); without it the tests fail saying which step could not run.
 * Slow: it runs with `npm run test:extended`, not in `npm test`.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  ConsumerApp,
  ConsumerVersions,
  createConsumerApp,
  installedCopies,
  installedVersion,
  latestVersion,
  lowestPeerVersion,
  NODE_MAJORS,
  nodeBinary,
  openConsumerApp,
  PACKAGE_ROOT,
  PackedPackage,
  packPackage,
  step,
  StepResult,
  STEP_TIMES,
} from './consumer-app';

// Installing from the registry and synthesizing take minutes on a 2-core CI machine.
jest.setTimeout(15 * 60 * 1000);

let workDir: string;
let packed: PackedPackage;

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-consumer-'));
  packed = packPackage(workDir);
});

afterAll(() => {
  console.log(`consumer test steps:\n${STEP_TIMES.join('\n')}`);
  if (workDir !== undefined) {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
});

/** Folders of lib/ that ship only inside a bundle: the handler (assets/) and the CLI (dist/bin). */
const BUNDLED_ONLY = [path.join('lib', 'unikernel-ami', 'handler'), path.join('lib', 'cli')];

/** Every .ts module of lib/ that the package compiles. */
function compiledModules(dir = path.join(PACKAGE_ROOT, 'lib')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      return BUNDLED_ONLY.includes(path.relative(PACKAGE_ROOT, full)) ? [] : compiledModules(full);
    }
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path.relative(PACKAGE_ROOT, full).replace(/\.ts$/, '')] : [];
  });
}

describe('the tarball', () => {
  let unpacked: string;
  beforeAll(() => {
    unpacked = path.join(workDir, 'unpacked');
    fs.mkdirSync(unpacked);
    step('unpacking the tarball', 'tar', ['-xzf', packed.tarball, '-C', unpacked], workDir);
    unpacked = path.join(unpacked, 'package');
  });

  test('holds the compiled library, the jsii assembly, API.md, the CLI and handler bundles with their notices, the example kernel, nothing else', () => {
    const expected = [
      '.jsii',
      'API.md',
      'CHANGELOG.md',
      'LICENSE',
      'README.md',
      'THIRD-PARTY-NOTICES',
      'package.json',
      'assets/unikernel-ami-handler/index.js',
      'dist/bin/mirage-unikernel-ami.js',
      'examples/hello/hello.xen',
      ...compiledModules().flatMap((module) => [`dist/${module}.js`, `dist/${module}.d.ts`]),
    ].sort();
    expect(packed.files).toEqual(expected);
  });

  test('has no source maps, no @internal members in its typings, and a runnable CLI entry point', () => {
    const shipped = packed.files.map((file) => [file, fs.readFileSync(path.join(unpacked, file), 'utf8')] as const);
    expect(shipped.filter(([file, text]) => file.endsWith('.js') && text.includes('sourceMappingURL')).map(([file]) => file)).toEqual([]);
    expect(shipped.filter(([file, text]) => file.endsWith('.d.ts') && /@internal|\b_bind\b/.test(text)).map(([file]) => file)).toEqual([]);
    expect(fs.readFileSync(path.join(unpacked, 'dist/bin/mirage-unikernel-ami.js'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
  });

  test('declares its license with the license text, where it lives, and aws-cdk-lib and constructs as peers', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(unpacked, 'package.json'), 'utf8'));
    expect(manifest.license).toBe('Apache-2.0');
    const license = fs.readFileSync(path.join(unpacked, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(license).toContain('END OF TERMS AND CONDITIONS');
    expect(manifest.repository.url).toMatch(/^git\+https:\/\/github\.com\/.+\.git$/);
    expect(manifest.homepage).toMatch(/^https:\/\//);
    expect(manifest.bugs.url).toMatch(/^https:\/\//);
    expect(Object.keys(manifest.peerDependencies).sort()).toEqual(['aws-cdk-lib', 'constructs']);
    // Nothing besides the peers: the CLI's and the handler's AWS SDK clients are inside their bundles.
    expect(manifest.dependencies ?? {}).toEqual({});
    expect(manifest.bundledDependencies ?? manifest.bundleDependencies).toBeUndefined();
  });

  test('the CLI and handler bundles need nothing but Node.js built-in modules, and their packages are in THIRD-PARTY-NOTICES', async () => {
    // esbuild bundles each shipped file again, from a folder without node_modules: a require of any
    // package fails the build, except one guarded by try/catch (an optional module the code does
    // without), which esbuild leaves external and the metafile lists.
    const esbuild = await import('esbuild');
    const { builtinModules } = await import('module');
    for (const bundle of ['dist/bin/mirage-unikernel-ami.js', 'assets/unikernel-ami-handler/index.js']) {
      const result = await esbuild.build({
        entryPoints: [path.join(unpacked, bundle)], absWorkingDir: unpacked, bundle: true, platform: 'node', write: false, metafile: true, logLevel: 'silent',
      });
      const imports = Object.values(result.metafile.inputs).flatMap((input) => input.imports);
      expect(imports.length).toBeGreaterThan(0);
      const packages = imports.filter((entry) => !builtinModules.includes(entry.path.replace(/^node:/, ''))).map((entry) => entry.path);
      expect([bundle, packages]).toEqual([bundle, []]);
    }
    const notices = fs.readFileSync(path.join(unpacked, 'THIRD-PARTY-NOTICES'), 'utf8');
    expect(notices).toMatch(/^@aws-sdk\/client-ec2@\S+ +\(Apache-2\.0\)\n +in: the custom-resource handler \(assets\/unikernel-ami-handler\/index\.js\); the command line \(dist\/bin\/mirage-unikernel-ami\.js\)$/m);
  });

  test('the exports map: the construct API at the root, the TypeScript-only tools at subpaths, the assembly', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(unpacked, 'package.json'), 'utf8'));
    expect(Object.keys(manifest.exports).sort()).toEqual(['.', './.jsii', './disk-image', './kernel-inspection', './package.json', './pv-grub', './xen']);
    for (const [subpath, target] of Object.entries(manifest.exports as { [subpath: string]: string | { types: string; default: string } })) {
      for (const file of typeof target === 'string' ? [target] : [target.types, target.default]) {
        expect([subpath, fs.existsSync(path.join(unpacked, file))]).toEqual([subpath, true]);
      }
    }
  });
});

/** Type-checks and synthesizes the README's usage in `app`; returns the synthesized template. */
function checkReadmeUsage(app: ConsumerApp): { [key: string]: any } {
  for (const name of ['aws-cdk-lib', 'constructs']) {
    const copies = installedCopies(app, name);
    if (copies.length !== 1) {
      throw new Error(`expected one copy of ${name} in the consumer app, npm ls found ${copies.length}:\n${copies.join('\n')}`);
    }
  }
  // The usage as written, with unused imports and locals reported too.
  app.bin('type-checking the README usage (TypeScript 7)', 'tsc', ['--noEmit', '-p', '.', '--noUnusedLocals']);
  app.bin('cdk synth of the README usage', 'cdk', ['synth', '--quiet', '--no-notices']);
  return JSON.parse(fs.readFileSync(path.join(app.dir, 'cdk.out', 'Unikernels.template.json'), 'utf8'));
}

function resourcesOfType(template: { [key: string]: any }, type: string): unknown[] {
  return Object.values(template.Resources as { [id: string]: { Type: string } }).filter((resource) => resource.Type === type);
}

const NEWEST_APP = 'newest-app';

/**
 * The TypeScript-only tools, as a user imports them since 0.2.0: from subpaths of the package (the
 * type check of the app covers this file too). Prints what it found as one JSON line.
 */
const HELPERS_USAGE = `import { DiskLayout, planDiskImage } from 'mirage-unikernel-ami/disk-image';
import { inspectKernelFile } from 'mirage-unikernel-ami/kernel-inspection';
import { KernelArchitecture, pvGrubKernelId } from 'mirage-unikernel-ami/pv-grub';
import { renderXlConfig } from 'mirage-unikernel-ami/xen';
import * as root from 'mirage-unikernel-ami';
import * as fs from 'fs';

async function main(): Promise<void> {
  const inspection = await inspectKernelFile('hello.xen');
  const plan = planDiskImage(fs.statSync('hello.xen').size, { name: 'hello', layout: DiskLayout.MBR_PARTITION });
  const assembly = JSON.parse(fs.readFileSync(require.resolve('mirage-unikernel-ami/.jsii'), 'utf8'));
  console.log(JSON.stringify({
    bootable: inspection.bootable,
    architecture: inspection.architecture,
    kernelOffset: plan.kernelRuns[0].diskOffset,
    aki: pvGrubKernelId('eu-west-1', KernelArchitecture.X86_64),
    xl: renderXlConfig({ name: 'hello', disk: '/tmp/hello.img' }),
    assembly: assembly.name,
    rootExportsHelpers: 'inspectKernelFile' in root || 'planDiskImage' in root,
  }));
}

main().catch((err) => { console.error(err); process.exit(1); });
`;

describe.each([
  [NEWEST_APP, 'the newest aws-cdk-lib and constructs', () => ({ awsCdkLib: latestVersion('aws-cdk-lib'), constructs: latestVersion('constructs') })],
  ['lowest-app', 'the lowest aws-cdk-lib and constructs the peer ranges allow', () => ({ awsCdkLib: lowestPeerVersion('aws-cdk-lib'), constructs: lowestPeerVersion('constructs') })],
])('%s: a cdk init app with %s', (appName, _label, versionsOf) => {
  let app: ConsumerApp;
  let versions: ConsumerVersions;
  beforeAll(() => {
    versions = versionsOf();
    app = createConsumerApp(path.join(workDir, appName), packed.tarball, versions);
    fs.writeFileSync(path.join(app.dir, 'bin', 'helpers.ts'), HELPERS_USAGE);
  });

  test('installs one copy of each peer, compiles the README usage and synthesizes it', () => {
    expect(installedVersion(app, 'aws-cdk-lib')).toBe(versions.awsCdkLib);
    expect(installedVersion(app, 'constructs')).toBe(versions.constructs);
    const template = checkReadmeUsage(app);
    expect(resourcesOfType(template, 'Custom::MirageUnikernelAmi')).toHaveLength(1);
    // The construct's instance and the README's own ec2.Instance in myVpc.
    expect(resourcesOfType(template, 'AWS::EC2::Instance')).toHaveLength(2);
    // Both in myVpc, and the EBS direct build needs none: no second VPC.
    expect(resourcesOfType(template, 'AWS::EC2::VPC')).toHaveLength(1);
    expect(fs.readdirSync(path.join(app.dir, 'cdk.out')).filter((file) => file.endsWith('.xen'))).toHaveLength(1);
  });

  test('the package installs no dependency of its own (npm ls --omit=dev): only the peers', () => {
    const { stdout } = step('npm ls --omit=dev', 'npm', ['ls', '--omit=dev', '--all', '--json'], app.dir);
    const installed = JSON.parse(stdout).dependencies['mirage-unikernel-ami'];
    expect(installed.version).toBe(packed.version);
    expect(Object.keys(installed.dependencies ?? {}).filter((name) => !['aws-cdk-lib', 'constructs'].includes(name))).toEqual([]);
    expect(fs.existsSync(path.join(app.dir, 'node_modules', '@aws-sdk'))).toBe(false);
  });

  test.each(NODE_MAJORS)('on Node %i: cdk synth of the README usage, the CLI, and the subpath exports run', (major) => {
    const onNode = openConsumerApp(app.dir, nodeBinary(major));
    const version = step(`node --version (Node ${major})`, 'node', ['--version'], app.dir, false, onNode.env).stdout.trim();
    expect(version).toMatch(new RegExp(`^v${major}\\.`));
    onNode.bin(`cdk synth on Node ${major}`, 'cdk', ['synth', '--quiet', '--no-notices', '--output', `cdk.out.node${major}`]);
    const template = JSON.parse(fs.readFileSync(path.join(app.dir, `cdk.out.node${major}`, 'Unikernels.template.json'), 'utf8'));
    expect(resourcesOfType(template, 'Custom::MirageUnikernelAmi')).toHaveLength(1);
    const { stdout } = onNode.bin(`mirage-unikernel-ami inspect on Node ${major}`, 'mirage-unikernel-ami', ['inspect', 'hello.xen']);
    expect(stdout).toMatch(/^Bootable: +yes, by PV-GRUB$/m);
    const helpers = onNode.bin(`the subpath exports on Node ${major}`, 'tsx', [path.join('bin', 'helpers.ts')]);
    expect(JSON.parse(helpers.stdout)).toEqual({
      bootable: true,
      architecture: 'x86_64',
      kernelOffset: expect.any(Number),
      aki: 'aki-dc9ed9af',
      xl: expect.stringMatching(/^name = "hello"$/m),
      assembly: 'mirage-unikernel-ami',
      rootExportsHelpers: false,
    });
  });
});

test('the published typings compile with TypeScript 7 and the newest aws-cdk-lib, library checks on', () => {
  // The app's tsconfig skips library checks, so a broken .d.ts would go unnoticed there. The package
  // itself is built against the lowest aws-cdk-lib, so that end of the range is covered by its build.
  const app = openConsumerApp(path.join(workDir, NEWEST_APP));
  const typings = packed.files.filter((file) => file.endsWith('.d.ts')).map((file) => `node_modules/mirage-unikernel-ami/${file}`);
  fs.writeFileSync(path.join(app.dir, 'tsconfig.typings.json'), JSON.stringify({
    extends: './tsconfig.json',
    compilerOptions: { skipLibCheck: false },
    files: typings,
    include: [],
  }));
  app.bin('type-checking the published typings (TypeScript 7, skipLibCheck off)', 'tsc', ['--noEmit', '-p', 'tsconfig.typings.json']);
});

describe('a user\'s mistake stops cdk synth with one line naming the construct path', () => {
  const MISTAKES: Array<[string, [string, string], RegExp]> = [
    ['a missing kernel file', ["'hello.xen'", "'missing.xen'"], /Unikernels\/Hello: Cannot read the unikernel kernel file \S*missing\.xen/],
    ['a PVH-only kernel', ["'hello.xen'", "'pvh-only.xen'"], /Unikernels\/Hello: The kernel file \S*pvh-only\.xen cannot be booted by AWS PV-GRUB/],
    ['a region without PV-GRUB', ["'eu-west-1'", "'eu-north-1'"], /Unikernels\/Hello: Region eu-north-1 has no PV-GRUB kernel/],
    ['an instance type that cannot run a PV AMI', ["'t1.micro'", "'m5.large'"], /Unikernels\/Hello: instances\.instanceType m5\.large cannot run a paravirtual AMI/],
  ];
  const synthOutputs = new Map<string, StepResult>();

  beforeAll(async () => {
    const app = openConsumerApp(path.join(workDir, NEWEST_APP));
    fs.copyFileSync(path.join(PACKAGE_ROOT, 'test/fixtures/kernels/pvh-only.elf'), path.join(app.dir, 'pvh-only.xen'));
    const usage = fs.readFileSync(path.join(app.dir, 'bin', 'app.ts'), 'utf8');
    // The four synths are independent: run them side by side.
    await Promise.all(MISTAKES.map(async ([label, [from, to]]) => {
      if (!usage.includes(from)) {
        throw new Error(`the README usage no longer contains ${from}, which the test for ${label} replaces`);
      }
      const name = label.replace(/\W+/g, '-');
      fs.writeFileSync(path.join(app.dir, 'bin', `${name}.ts`), usage.replace(from, to));
      // Each into its own output folder: the CLI locks the one it synthesizes into.
      const args = ['synth', '--quiet', '--no-notices', '--app', `npx tsx bin/${name}.ts`, '--output', `cdk.out.${name}`];
      synthOutputs.set(label, await app.binAsync(`cdk synth with ${label}`, 'cdk', args, true));
    }));
  });

  test.each(MISTAKES)('%s', (label, _replace, message) => {
    const { status, output } = synthOutputs.get(label)!;
    expect(status).not.toBe(0);
    expect(output).toMatch(message);
    expect(output.split('\n').filter((line) => line.includes('ValidationError'))).toHaveLength(1);
    // No stack frames, into the package or anywhere else.
    expect(output).not.toMatch(/^\s+at /m);
  });
});
