import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { EC2Client, GetConsoleOutputCommand } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { HELLO_KERNEL, PVH_KERNEL, REPO_ROOT, runCliCollecting as run } from '../fixtures/cli';
import { pygrubEntries } from '../fixtures/pygrub';

function debugfs(image: string, request: string): Buffer {
  return execFileSync('debugfs', ['-R', request, image], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Counts non-zero bytes of a file by reading it, independently of the writer's own count. */
function countNonZeroBytes(file: string): number {
  const fd = fs.openSync(file, 'r');
  const chunk = Buffer.alloc(1 << 20);
  let count = 0;
  try {
    for (let offset = 0; ; offset += chunk.length) {
      const read = fs.readSync(fd, chunk, 0, chunk.length, offset);
      if (read === 0) break;
      for (let i = 0; i < read; i++) if (chunk[i] !== 0) count++;
    }
  } finally {
    fs.closeSync(fd);
  }
  return count;
}

let workDir: string;
beforeEach(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-cli-'));
});
afterEach(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

describe('inspect', () => {
  test('accepts the example PV kernel and names its architecture', async () => {
    const result = await run(['inspect', HELLO_KERNEL]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/x86_64/);
    expect(result.stderr).toBe('');
  });

  test('refuses a PVH-only kernel with the reason, exit 1', async () => {
    const result = await run(['inspect', PVH_KERNEL]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^Reason: .*PVH/m);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('refuses a file that is not a kernel', async () => {
    const junk = path.join(workDir, 'notes.txt');
    fs.writeFileSync(junk, 'this is not a kernel\n');
    const result = await run(['inspect', junk]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(junk);
  });
});

describe('disk', () => {
  test('writes a sparse image whose filesystem holds the kernel and the menu.lst', async () => {
    // GIVEN
    const out = path.join(workDir, 'hello.img');

    // WHEN
    const result = await run(['disk', HELLO_KERNEL, '--out', out, '--args', 'verbose=1 net=off']);

    // THEN
    expect(result.code).toBe(0);
    expect(fs.statSync(out).size).toBe(2 ** 30);
    // Sparse: far fewer blocks allocated than the 1 GiB size.
    expect(fs.statSync(out).blocks * 512).toBeLessThan(64 * 2 ** 20);
    execFileSync('e2fsck', ['-fn', out], { stdio: 'pipe' });
    const dumped = path.join(workDir, 'kernel.out');
    debugfs(out, `dump /boot/hello.xen ${dumped}`);
    expect(fs.readFileSync(dumped).equals(fs.readFileSync(HELLO_KERNEL))).toBe(true);
    expect(pygrubEntries(out)).toEqual([{ title: 'hello', root: 'd0', kernel: '/boot/hello.xen', args: 'verbose=1 net=off' }]);
    expect(result.stdout).toContain(`${2 ** 30} bytes`);
    const superblock = execFileSync('dumpe2fs', ['-h', out], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(superblock)![1]);
    expect(result.stdout).toContain(`with a ${field('Block count') * field('Block size')}-byte ext2 filesystem at byte 0`);
    expect(result.stdout).toContain(`/boot/hello.xen: ${fs.statSync(HELLO_KERNEL).size} bytes`);
    // Sparse: what is written is the kernel and little more.
    expect(countNonZeroBytes(out)).toBeLessThan(fs.statSync(HELLO_KERNEL).size + 64 * 1024);
  });

  test('refuses a gzip kernel whose trailer is cut off, and writes nothing', async () => {
    // GIVEN the example kernel gzip-compressed, without the last 4 bytes of its trailer
    const gz = zlib.gzipSync(fs.readFileSync(HELLO_KERNEL));
    const kernel = path.join(workDir, 'hello.xen.gz');
    fs.writeFileSync(kernel, gz.subarray(0, gz.length - 4));
    const out = path.join(workDir, 'hello.img');

    // WHEN
    const result = await run(['disk', kernel, '--out', out]);

    // THEN
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot be booted by PV-GRUB: The kernel file starts with the gzip magic, but the gzip data is corrupt or truncated/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('an output that cannot be written is one line naming it', async () => {
    const result = await run(['disk', HELLO_KERNEL, '--out', path.join(workDir, 'no-such-dir', 'x.img')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^mirage-unikernel-ami: cannot write .*no-such-dir\/x\.img: no such file or directory \(ENOENT\)\n$/);
  });

  test('writes the MBR layout with a chosen name and size', async () => {
    const out = path.join(workDir, 'mbr.img');
    const result = await run(['disk', HELLO_KERNEL, '--out', out, '--name', 'greeter', '--layout', 'mbr', '--size-gib', '2']);
    expect(result.code).toBe(0);
    expect(fs.statSync(out).size).toBe(2 * 2 ** 30);
    const table = JSON.parse(execFileSync('sfdisk', ['--json', out]).toString());
    expect(table.partitiontable.label).toBe('dos');
    expect(table.partitiontable.partitions).toHaveLength(1);
    const partition = table.partitiontable.partitions[0];
    const fsImage = path.join(workDir, 'partition.img');
    execFileSync('dd', [`if=${out}`, `of=${fsImage}`, 'bs=512', `skip=${partition.start}`, `count=${partition.size}`, 'conv=sparse', 'status=none']);
    execFileSync('e2fsck', ['-fn', fsImage], { stdio: 'pipe' });
    expect(pygrubEntries(out)).toEqual([{ title: 'greeter', root: 'd0p0', kernel: '/boot/greeter.xen', args: '' }]);
  });

  test('refuses a kernel PV-GRUB cannot boot and writes nothing', async () => {
    const out = path.join(workDir, 'pvh.img');
    const result = await run(['disk', PVH_KERNEL, '--out', out]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/PVH/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test.each([
    [['disk', 'k.xen'], /--out FILE/],
    [['disk', 'HELLO', '--out', 'x.img', '--layout', 'gpt'], /--layout must be 'whole'.*'mbr'.*got 'gpt'/],
    [['disk', 'HELLO', '--out', 'x.img', '--size-gib', '0.5'], /--size-gib must be a whole number.*got '0.5'/],
    [['disk', 'HELLO', '--out', 'x.img', '--args', 'a\nb'], /argument|newline|control/i],
    [['disk', 'HELLO', '--out', 'x.img', '--name', 'no spaces'], /name/i],
    [['disk', 'HELLO', '--out', 'x.img', '--colour', 'red'], /unknown option --colour/],
    [['disk', '/nonexistent/kernel.xen', '--out', 'x.img'], /cannot read kernel \/nonexistent\/kernel.xen: no such file or directory \(ENOENT\)/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('%j is a usage error: one line, exit 2', async (argv, message) => {
    const result = await run(argv.map((arg) => (arg === 'HELLO' ? HELLO_KERNEL : arg)));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('console', () => {
  const ec2Mock = mockClient(EC2Client);
  beforeEach(() => ec2Mock.reset());

  test('prints the decoded console output of an instance', async () => {
    ec2Mock.on(GetConsoleOutputCommand).resolves({ Output: Buffer.from('Hello from MirageUnikernelAmi\n').toString('base64') });
    const result = await run(['console', 'i-0123456789abcdef0', '--region', 'us-east-1'], new EC2Client({ region: 'us-east-1' }));
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('Hello from MirageUnikernelAmi\n');
    // No Latest: EC2 serves it on Nitro types only, and PV instances run on Xen.
    expect(ec2Mock).toHaveReceivedCommandTimes(GetConsoleOutputCommand, 1);
    expect(ec2Mock.commandCalls(GetConsoleOutputCommand)[0].args[0].input).toEqual({ InstanceId: 'i-0123456789abcdef0' });
  });

  test('says when there is no output yet', async () => {
    ec2Mock.on(GetConsoleOutputCommand).resolves({});
    const result = await run(['console', 'i-0123456789abcdef0'], new EC2Client({ region: 'us-east-1' }));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no console output yet/);
  });

  test('refuses something that is not an instance id before calling AWS', async () => {
    const result = await run(['console', 'ami-12345678'], new EC2Client({}));
    expect(result.code).toBe(2);
    expect(ec2Mock.calls()).toHaveLength(0);
  });
});

test('the installed binary reports a user mistake as one line without a stack trace', () => {
  const result = spawnSync('npx', ['ts-node', '--transpile-only', path.join(REPO_ROOT, 'bin', 'mirage-unikernel-ami.ts'), 'inspect'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  expect(result.status).toBe(2);
  expect(result.stderr).toBe('mirage-unikernel-ami: expected exactly one KERNEL, got none\n');
});
