/**
 * How the command line meets a user: help, paths it cannot read or write, a refusal said once, a
 * missing region, and which commands load the AWS SDK at all.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HELLO_KERNEL, PVH_KERNEL, REPO_ROOT, runCliCollecting as run } from '../fixtures/cli';

let workDir: string;
beforeEach(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-cli-index-'));
});
afterEach(() => fs.rmSync(workDir, { recursive: true, force: true }));

describe('help', () => {
  test.each([['--help'], ['-h'], ['help']])('%s prints the usage of every command, exit 0', async (flag) => {
    const result = await run([flag]);
    expect(result.code).toBe(0);
    for (const command of ['inspect KERNEL', 'disk KERNEL --out FILE', 'console INSTANCE_ID']) {
      expect(result.stdout).toContain(`mirage-unikernel-ami ${command}`);
    }
  });

  test.each([['--version'], ['-V'], ['version']])('%s prints the version of the package.json it ships with, exit 0', async (flag) => {
    const result = await run([flag]);
    expect(result.code).toBe(0);
    const { version } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(result.stdout).toBe(`mirage-unikernel-ami ${version}\n`);
  });

  test.each(['inspect', 'disk', 'console', 'xl', 'boot'])('%s --help prints that command\'s usage alone, exit 0, and runs nothing', async (command) => {
    for (const argv of [[command, '--help'], [command, '-h'], [command, 'some-kernel.xen', '--help']]) {
      const result = await run(argv);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(new RegExp(`^Usage:\\n  mirage-unikernel-ami ${command} `));
      const others = ['inspect', 'disk', 'console', 'xl', 'boot'].filter((other) => other !== command);
      for (const other of others) {
        expect(result.stdout).not.toContain(`mirage-unikernel-ami ${other} `);
      }
    }
  });

  test('-h as the value of --args goes to the unikernel, not to help', async () => {
    const out = path.join(workDir, 'x.img');
    const result = await run(['disk', HELLO_KERNEL, '--out', out, '--args', '-h']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/kernel \/boot\/hello\.xen -h$/m);
  });

  test('no command prints the usage and exits 2', async () => {
    const result = await run([]);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(/^Usage:/);
  });
});

describe('a path that cannot be read or written is one line naming it', () => {
  test.each([
    ['a missing kernel', () => ['inspect', path.join(workDir, 'missing.xen')], (dir: string) => `cannot read kernel ${dir}/missing.xen: no such file or directory (ENOENT)`],
    ['a folder given as the kernel', () => ['inspect', workDir], (dir: string) => `cannot read kernel ${dir}: illegal operation on a directory (EISDIR)`],
    ['a missing kernel for disk', () => ['disk', path.join(workDir, 'missing.xen'), '--out', path.join(workDir, 'x.img')], (dir: string) => `cannot read kernel ${dir}/missing.xen: no such file or directory (ENOENT)`],
    ['--out in a missing folder', () => ['disk', HELLO_KERNEL, '--out', path.join(workDir, 'no', 'x.img')], (dir: string) => `cannot write ${dir}/no/x.img: no such file or directory (ENOENT)`],
  ])('%s', async (_label, argv, message) => {
    const result = await run(argv());
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`mirage-unikernel-ami: ${message(workDir)}\n`);
    expect(result.stdout).toBe('');
  });
});

test('inspect says why a kernel is refused once: in the report, which the one-line verdict points to', async () => {
  const result = await run(['inspect', PVH_KERNEL]);
  expect(result.code).toBe(1);
  const reason = /^Reason: (.+)$/m.exec(result.stdout)?.[1];
  expect(reason).toMatch(/PVH-only/);
  expect(`${result.stdout}${result.stderr}`.split(reason!)).toHaveLength(2);
  expect(result.stderr).toBe(`mirage-unikernel-ami: ${PVH_KERNEL} cannot be booted by PV-GRUB (see Reason above)\n`);
});

describe('console without a region', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  test('says to pass --region or set AWS_REGION, before calling AWS', async () => {
    // No region anywhere the SDK looks: the environment, or a profile in the shared config files.
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    delete process.env.AWS_PROFILE;
    process.env.AWS_CONFIG_FILE = path.join(workDir, 'no-config');
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(workDir, 'no-credentials');
    const result = await run(['console', 'i-0123456789abcdef0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'mirage-unikernel-ami: console needs the instance\'s region: pass --region REGION (e.g. --region eu-west-1) or set AWS_REGION\n',
    );
  });
});

describe('console without credentials', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  test('says what to set, instead of the SDK\'s CredentialsProviderError', async () => {
    // The SDK's real default chain, with nothing to find: no environment keys, no profile, no files,
    // and the instance metadata service switched off (this machine is no EC2 instance).
    for (const key of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI']) {
      delete process.env[key];
    }
    process.env.AWS_CONFIG_FILE = path.join(workDir, 'no-config');
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(workDir, 'no-credentials');
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    const result = await run(['console', 'i-0123456789abcdef0', '--region', 'eu-west-1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'mirage-unikernel-ami: console needs AWS credentials allowed ec2:GetConsoleOutput: set AWS_PROFILE to a profile of ~/.aws/config ' +
        "(after 'aws configure' or 'aws sso login'), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n",
    );
  });
});

test('--help, inspect and disk do not load the AWS SDK; console does', () => {
  // A fresh process (jest's own module registry says nothing about a real start-up): run the three
  // commands, list the loaded modules, then the same after console.
  const script = `
    const { runCli } = require('./lib/cli');
    const io = { stdout: () => {}, stderr: () => {} };
    const sdk = () => Object.keys(require.cache).filter((file) => file.includes('node_modules/@aws-sdk/')).length;
    (async () => {
      await runCli(['--help'], io);
      await runCli(['inspect', ${JSON.stringify(HELLO_KERNEL)}], io);
      await runCli(['disk', ${JSON.stringify(HELLO_KERNEL)}, '--out', ${JSON.stringify(path.join(workDir, 'x.img'))}], io);
      const before = sdk();
      await runCli(['console', 'i-0123456789abcdef0', '--region', 'eu-west-1'], { ...io, ec2Client: () => ({ config: { region: async () => 'eu-west-1' }, send: async () => ({}) }) });
      process.stdout.write(JSON.stringify({ before, after: sdk() }));
    })();
  `;
  const result = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { cwd: REPO_ROOT, encoding: 'utf8' });
  expect(result.stderr).toBe('');
  const { before, after } = JSON.parse(result.stdout);
  expect(before).toBe(0);
  expect(after).toBeGreaterThan(0);
});
