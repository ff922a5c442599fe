/** `mirage-unikernel-ami xl`: the files it writes are read back with xl's own parser (libxlutil). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HELLO_KERNEL, PVH_KERNEL, runCliCollecting as run } from '../../fixtures/cli';
import { readWithXlutil, XL_KEYS } from '../../xen/xlutil';

let workDir: string;
let cwd: string;
beforeEach(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-xl-'));
  cwd = process.cwd();
});
afterEach(() => {
  process.chdir(cwd);
  fs.rmSync(workDir, { recursive: true, force: true });
});

test('KERNEL: a direct PV boot of the kernel by its absolute path, named after the file', async () => {
  // GIVEN a kernel given by a relative path
  fs.copyFileSync(HELLO_KERNEL, path.join(workDir, 'hello.xen'));
  process.chdir(workDir);

  // WHEN
  const result = await run(['xl', 'hello.xen', '--out', 'hello.xl', '--args', 'verbose "x"', '--memory', '64', '--vcpus', '2', '--bridge', 'xenbr0']);

  // THEN
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^wrote hello\.xl; .*xl create -c hello\.xl\n/);
  const reading = readWithXlutil(fs.readFileSync(path.join(workDir, 'hello.xl')), XL_KEYS);
  expect(reading.rc).toBe(0);
  expect(reading.settings).toEqual({
    name: 'hello',
    type: 'pv',
    kernel: path.join(fs.realpathSync(workDir), 'hello.xen'),
    cmdline: 'verbose "x"',
    memory: '64',
    vcpus: '2',
    on_crash: 'preserve',
    vif: ['bridge=xenbr0'],
  });
});

test('--disk IMAGE: the disk booted through pygrub, named after the image', async () => {
  const image = path.join(workDir, 'greeter.img');
  expect((await run(['disk', HELLO_KERNEL, '--out', image, '--name', 'greeter'])).code).toBe(0);

  const result = await run(['xl', '--disk', image, '--out', path.join(workDir, 'greeter.xl')]);

  expect(result.code).toBe(0);
  const reading = readWithXlutil(fs.readFileSync(path.join(workDir, 'greeter.xl')), XL_KEYS);
  expect(reading.settings).toEqual({
    name: 'greeter',
    type: 'pv',
    bootloader: 'pygrub',
    bootloader_args: ['-q'],
    disk: [`format=raw,vdev=xvda,access=r,target=${image}`],
    memory: '256',
    vcpus: '1',
    on_crash: 'preserve',
  });
});

test('--disk IMAGE in the MBR layout is a disk image too', async () => {
  const image = path.join(workDir, 'parted.img');
  expect((await run(['disk', HELLO_KERNEL, '--out', image, '--layout', 'mbr'])).code).toBe(0);
  const result = await run(['xl', '--disk', image, '--out', path.join(workDir, 'parted.xl')]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
});

test('a kernel that is not a Xen PV kernel gets no configuration: exit 1 with the reason', async () => {
  const out = path.join(workDir, 'pvh.xl');
  const result = await run(['xl', PVH_KERNEL, '--out', out]);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/PVH/);
  expect(fs.existsSync(out)).toBe(false);
});

test.each([
  [['xl', 'HELLO'], /xl needs --out NAME\.xl/],
  [['xl', '--out', 'x.xl'], /either KERNEL .* or --disk IMAGE .*not neither/],
  [['xl', 'HELLO', '--disk', 'HELLO', '--out', 'x.xl'], /not both/],
  [['xl', '--disk', 'HELLO', '--args', 'a', '--out', 'x.xl'], /--args goes with KERNEL.*menu\.lst/],
  [['xl', '--disk', '/nonexistent.img', '--out', 'x.xl'], /cannot read disk image \/nonexistent\.img/],
  [['xl', 'HELLO', '--memory', '1G', '--out', 'x.xl'], /--memory must be a whole number, got '1G'/],
  [['xl', 'HELLO', '--vcpus', '0', '--out', 'x.xl'], /Invalid vcpus 0/],
  [['xl', 'HELLO', '--name', '42', '--out', 'x.xl'], /Invalid domain name "42".*not all digits/],
  [['xl', 'HELLO', '--args', 'a\nb', '--out', 'x.xl'], /U\+000A/],
  [['xl', 'HELLO', '--bridge', 'br0,script=x', '--out', 'x.xl'], /Invalid bridge/],
  [['xl', '--disk', 'MBR_IMG_WITH_SPACE', '--out', 'x.xl'], /gives no usable domain name.*pass --name NAME/],
  [['xl', '--disk', 'HELLO', '--out', 'x.xl'], /hello\.xen is not a disk image: it has neither an MBR nor an ext2 filesystem/],
  [['xl', '--disk', 'EMPTY_IMG', '--out', 'x.xl'], /empty\.img is not a disk image/],
])('%j is a usage error: one line, exit 2, nothing written', async (argv, message) => {
  // A first sector with nothing but the MBR boot signature: a disk image as far as the check goes.
  const mbrImage = path.join(workDir, 'my disk.img');
  const sector = Buffer.alloc(512);
  sector.writeUInt16BE(0x55aa, 510);
  fs.writeFileSync(mbrImage, sector);
  const emptyImage = path.join(workDir, 'empty.img');
  fs.writeFileSync(emptyImage, '');
  const args = argv.map((arg) => (arg === 'HELLO' ? HELLO_KERNEL : arg === 'MBR_IMG_WITH_SPACE' ? mbrImage : arg === 'EMPTY_IMG' ? emptyImage
    : arg === 'x.xl' ? path.join(workDir, 'x.xl') : arg));
  const result = await run(args);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(message);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(fs.existsSync(path.join(workDir, 'x.xl'))).toBe(false);
});
