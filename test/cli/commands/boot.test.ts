/**
 * `mirage-unikernel-ami boot`: mistakes in how it is called are refused before QEMU starts.
 * The real boots are in test/xen/boot.test.ts.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HELLO_KERNEL, PVH_KERNEL, runCliCollecting as run } from '../../fixtures/cli';

let workDir: string;
beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-boot-cli-'));
  fs.writeFileSync(path.join(workDir, 'disk.img'), '');
  fs.writeFileSync(path.join(workDir, 'extra.xl'), 'name = "x"\nkernel = "/k.xen"\nextra = "console=hvc0"\n');
});
afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

test.each([
  [['boot'], /give one of KERNEL, --disk IMAGE or --xl CONFIG to boot, got none/],
  [['boot', 'HELLO', '--disk', 'DISK'], /got KERNEL and --disk/],
  [['boot', '--disk', 'DISK', '--xl', 'EXTRA'], /got --disk and --xl/],
  [['boot', '--disk', 'DISK', '--args', 'a'], /--args describe the disk built from KERNEL; an existing disk image already has them/],
  [['boot', '--xl', 'EXTRA', '--layout', 'mbr'], /--layout describe the disk built from KERNEL; an xl configuration already has them/],
  [['boot', '--xl', 'EXTRA', '--memory', '64'], /--name and --memory come from the xl configuration/],
  [['boot', '--xl', 'EXTRA'], /'extra' is not one that mirage-unikernel-ami xl writes/],
  [['boot', '--xl', '/nonexistent.xl'], /cannot read xl configuration \/nonexistent\.xl: ENOENT/],
  [['boot', '--disk', '/nonexistent.img'], /cannot read disk image \/nonexistent\.img: ENOENT/],
  [['boot', '--disk', 'DISK'], /disk\.img is not a disk image: it has neither an MBR nor an ext2 filesystem/],
  [['boot', '--disk', 'HELLO'], /hello\.xen is not a disk image/],
  [['boot', 'HELLO', '--timeout', '0'], /--timeout must be at least 1 second/],
  [['boot', 'HELLO', '--timeout', 'soon'], /--timeout must be a whole number, got 'soon'/],
  [['boot', 'HELLO', '--memory', '0'], /Invalid memory 0/],
  [['boot', 'HELLO', '--layout', 'gpt'], /--layout must be 'whole'.*'mbr'/],
  [['boot', 'HELLO', '--args', 'a\nb'], /U\+000A/],
  [['boot', 'HELLO', '--name', 'no spaces'], /Invalid domain name "no spaces"/],
])('%j is a usage error: one line, exit 2, no QEMU', async (argv, message) => {
  const args = argv.map((arg) =>
    arg === 'HELLO' ? HELLO_KERNEL : arg === 'DISK' ? path.join(workDir, 'disk.img') : arg === 'EXTRA' ? path.join(workDir, 'extra.xl') : arg,
  );
  const result = await run(args);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(message);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stdout).toBe('');
});

test('a kernel PV-GRUB cannot boot is not booted: exit 2 with the reason', async () => {
  const result = await run(['boot', PVH_KERNEL]);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/cannot be booted by PV-GRUB: .*PVH/);
  expect(result.stderr).not.toMatch(/QEMU started/);
});
