/**
 * Real boots: the example kernel under the Xen 4.17 hypervisor inside QEMU (software emulation),
 * through the command line a user runs. The greeting on the guest's console echoes its command
 * line, so the exact kernel arguments prove which menu.lst or xl configuration was read.
 *
 * They need Debian's qemu-system-x86, xen-utils-4.17, xenstore-utils and busybox-static (installed
 * by scripts/ensure-test-tools.sh) and apt's package lists (the hypervisor and the dom0 kernel are
 * downloaded into the cache once). A missing one fails the test with its name: `boot` exits 2 saying so.
 * The boots run one after another in this file, sharing the cached dom0 machine.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CliRun, HELLO_KERNEL, runCliCollecting } from '../fixtures/cli';

// The first boot also builds the cached dom0 machine (a 70 MB kernel package to download and unpack);
// software emulation on a loaded 2-core machine is slow. Generous, because a timeout here proves nothing.
jest.setTimeout(20 * 60 * 1000);

async function run(argv: string[]): Promise<CliRun> {
  const result = await runCliCollecting(argv);
  // The timings and the summary line, for whoever reads the test log.
  process.stderr.write(`$ mirage-unikernel-ami ${argv.join(' ')}\n${result.stderr}${result.stdout}(exit ${result.code})\n`);
  return result;
}

/** Fails with boot's own explanation (a missing package, a dom0 error) when it did not exit 0. */
function expectCleanShutdown(result: CliRun): void {
  if (result.code !== 0) {
    throw new Error(`boot exited ${result.code}:\n${result.stderr}`);
  }
  expect(result.stderr).toMatch(/QEMU started[\s\S]*Xen up[\s\S]*dom0 up[\s\S]*guest created[\s\S]*guest exited \(poweroff\)/);
  expect(result.stderr).toMatch(/mirage-unikernel-ami: guest \S+ shut down by itself \(poweroff\)/);
}

let workDir: string;
beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-boot-test-'));
});
afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

test.each([
  ['whole', 'layout=whole "double quoted" \'single\' back\\slash $HOME #hash'],
  ['mbr', 'layout=mbr --ipv4=10.0.0.2/24 a=b,c'],
])('the disk the construct would write (%s layout) boots through pygrub and the kernel sees its exact arguments', async (layout, kernelArgs) => {
  const result = await run(['boot', HELLO_KERNEL, '--layout', layout, '--args', kernelArgs, '--memory', '32', '--timeout', '120']);

  expectCleanShutdown(result);
  if (result.stderr.includes('building the dom0 machine')) {
    // The boot that builds the cached dom0 machine (the first on a machine) says how far it got, step by step.
    expect(result.stderr).toMatch(new RegExp([
      'downloading xen-hypervisor-4\\.17-amd64', 'downloaded xen-hypervisor[^\\n]* MiB; unpacking it \\(\\d+\\.\\d s\\)', 'unpacked xen-hypervisor',
      'downloading linux-image-', 'unpacked linux-image-', 'added the kernel modules', 'compressing the initramfs', 'compressed the initramfs',
      'dom0 machine ready',
    ].join('[\\s\\S]*')));
  }
  expect(result.stderr).toContain(
    `built the disk the construct would write (${layout} layout); its menu.lst says: root ${layout === 'mbr' ? '(hd0,0)' : '(hd0)'}; kernel /boot/hello.xen ${kernelArgs}\n`,
  );
  expect(result.stdout).toBe(`Hello from MirageUnikernelAmi (cmdline: "${kernelArgs}")\n`);
});

test('the kernel boots directly from an xl configuration written by `mirage-unikernel-ami xl`', async () => {
  const config = path.join(workDir, 'greeter.xl');
  const kernelArgs = 'direct boot: "quoted" \\ and [brackets], #not-a-comment';
  const written = await run(['xl', HELLO_KERNEL, '--out', config, '--name', 'greeter', '--args', kernelArgs, '--memory', '32']);
  expect(written.code).toBe(0);

  const result = await run(['boot', '--xl', config, '--timeout', '120']);

  expectCleanShutdown(result);
  expect(result.stderr).toMatch(/guest created \(greeter, domain \d+\)/);
  expect(result.stdout).toBe(`Hello from MirageUnikernelAmi (cmdline: "${kernelArgs}")\n`);
});

test('a disk without a bootable menu.lst is not booted: exit 2 and pygrub\'s reason in one line', async () => {
  // An ext2 volume (so `boot` takes it for a disk image) with nothing on it: no menu.lst, no kernel.
  const empty = path.join(workDir, 'empty.img');
  fs.writeFileSync(empty, '');
  fs.truncateSync(empty, 64 * 2 ** 20);
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext2', empty]);

  const result = await run(['boot', '--disk', empty, '--timeout', '60']);

  expect(result.code).toBe(2);
  expect(result.stdout).toBe('');
  const summary = result.stderr.trim().split('\n').pop();
  expect(summary).toBe('mirage-unikernel-ami: xl create could not start guest empty: RuntimeError: Unable to find partition containing kernel');
});
