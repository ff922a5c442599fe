/**
 * The helper script against a real block device: a loop device over a sparse file stands in for the
 * EBS volume, reached the way an instance shows it, by the by-id link of a Nitro instance
 * (/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol...) or the /dev/xvdf node of a Xen instance.
 * This machine has no udev, so those names are made under a directory the script takes for its
 * device root (MUA_DEVICE_ROOT); flush failures come from PATH shims of `sync` and `blockdev`.
 * Needs root and loop devices: without them the tests fail, naming why (they never skip).
 *
 * The staged files are fed as local paths, not downloaded: the test does not depend on how the
 * helper downloads them.
 */
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'fs';
import { spawnSync } from 'child_process';
import { join } from 'path';
import { buildDiskImage, DiskImage, DiskLayout } from '../../../lib/disk-image';
import { helperScript } from '../../../lib/unikernel-ami/handler/helper-script';
import { encodeStagedImage } from '../../../lib/unikernel-ami/handler/staging';
import { blockDigests, expectBootableDisk, fakeKernel, makeTempDir, runTool, scanNonZeroBlocks } from '../../disk-image/tools';

const GIB = 2 ** 30;
const BLOCK = 524288;
const KERNEL_ARGS = 'console=hvc0';
const KERNEL = fakeKernel(3 * 2 ** 20 + 777);
const VOLUME_ID = 'vol-0123456789abcdef0';

let tmp: ReturnType<typeof makeTempDir>;
let loop: { device: string; backing: string } | undefined;
let staged: { image: DiskImage; blocks: string; manifest: string };

/** Attaches a loop device over a blank 1 GiB file; fails, naming losetup's reason, if it cannot. */
function attachLoop(): { device: string; backing: string } {
  const backing = tmp.path('volume.img');
  runTool('truncate', ['-s', String(GIB), backing]);
  const attached = spawnSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' });
  if (attached.error || attached.status !== 0) {
    throw new Error(`These tests need a loop device (run as root on a machine with loop devices): losetup --find --show refused: ${attached.error?.message ?? attached.stderr.trim()}`);
  }
  return { device: attached.stdout.trim(), backing };
}

beforeEach(async () => {
  tmp = makeTempDir();
  const image = buildDiskImage({ kernel: KERNEL, name: 'hello', kernelArgs: KERNEL_ARGS, layout: DiskLayout.WHOLE_VOLUME, volumeSizeGiB: 1 });
  const encoded = await encodeStagedImage(image);
  staged = { image, blocks: tmp.path('blocks.gz'), manifest: tmp.path('manifest.txt') };
  writeFileSync(staged.blocks, encoded.blocksGz);
  writeFileSync(staged.manifest, encoded.manifest);
  loop = attachLoop();
});

afterEach(() => {
  if (loop) {
    runTool('losetup', ['--detach', loop.device]);
    loop = undefined;
  }
  tmp.remove();
});

/** A directory standing in for / with the names an instance shows for the volume. */
function deviceRoot(names: { nitroLinkTo?: string; xenNode?: string }): string {
  const root = tmp.path('root');
  mkdirSync(join(root, 'dev/disk/by-id'), { recursive: true });
  if (names.nitroLinkTo) {
    // what udev makes on a Nitro instance: a link named by the volume id (serial) to the NVMe device
    symlinkSync(names.nitroLinkTo, join(root, `dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOLUME_ID.replace('-', '')}`));
  }
  if (names.xenNode) {
    // on Xen the volume attached as /dev/sdf is the block device node /dev/xvdf
    const [major, minor] = runTool('stat', ['-c', '%t %T', names.xenNode]).stdout.trim().split(' ').map((hex) => parseInt(hex, 16));
    const made = runTool('mknod', [join(root, 'dev/xvdf'), 'b', String(major), String(minor)]);
    expect(made).toMatchObject({ status: 0 });
  }
  return root;
}

/** PATH shims: each named command prints its complaint and fails; `blockdev` fails only for --flushbufs. */
function shims(failing: readonly ('sync' | 'blockdev')[]): string {
  const dir = tmp.path('shims');
  mkdirSync(dir, { recursive: true });
  for (const command of failing) {
    const body = command === 'blockdev'
      ? `#!/bin/bash\nif [ "$1" = --flushbufs ]; then echo "blockdev: BLKFLSBUF: Input/output error" >&2; exit 1; fi\nexec ${runTool('bash', ['-c', 'command -v blockdev']).stdout.trim()} "$@"\n`
      : '#!/bin/bash\necho "sync: error syncing: Input/output error" >&2\nexit 1\n';
    writeFileSync(join(dir, command), body);
    chmodSync(join(dir, command), 0o755);
  }
  return dir;
}

function runOnInstance(root: string, options: { failing?: readonly ('sync' | 'blockdev')[] } = {}) {
  const script = helperScript({ blocksSource: staged.blocks, manifestSource: staged.manifest, volumeId: VOLUME_ID });
  const path = options.failing ? `${shims(options.failing)}:${process.env.PATH}` : process.env.PATH;
  return spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: path, MUA_DEVICE_ROOT: root, MUA_DEVICE_ATTEMPTS: '2' } });
}

/** The volume (through its backing file) holds exactly the image's blocks, and its filesystem boots. */
function expectImageOnVolume(): void {
  expect(scanNonZeroBlocks(loop!.backing, BLOCK)).toEqual(blockDigests(staged.image.nonZeroBlocks(BLOCK)));
  expectBootableDisk(loop!.backing, staged.image, KERNEL, KERNEL_ARGS);
}

function allocatedSectors(file: string): number {
  return Number(runTool('stat', ['-c', '%b', file]).stdout.trim());
}

describe('helper script on a loop device', () => {
  test('Nitro: finds the volume by its by-id link, writes the block device it points to, and verifies it', () => {
    const result = runOnInstance(deviceRoot({ nitroLinkTo: loop!.device }));
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(result.stdout).toContain(`image written to ${loop!.device} and verified`);
    expectImageOnVolume();
  });

  test('Xen: finds the volume as /dev/xvdf, a block device node, writes and verifies it', () => {
    const root = deviceRoot({ xenNode: loop!.device });
    const result = runOnInstance(root);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(result.stdout).toContain(`image written to ${join(root, 'dev/xvdf')} and verified`);
    expectImageOnVolume();
  });

  test('a volume that never appears (only another volume\'s link): fails naming where it looked, writes nothing', () => {
    const root = deviceRoot({});
    symlinkSync(loop!.device, join(root, 'dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0fedcba9876543210'));
    const result = runOnInstance(root);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`mirage-unikernel-ami helper: volume ${VOLUME_ID} did not appear as ${root}/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0 or ${root}/dev/xvdf within 4 s`);
    expect(allocatedSectors(loop!.backing)).toBe(0);
  });

  test('sync fails after the write: the script fails saying so', () => {
    const result = runOnInstance(deviceRoot({ nitroLinkTo: loop!.device }), { failing: ['sync'] });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`mirage-unikernel-ami helper: sync failed after writing ${loop!.device}`);
    expect(result.stdout).not.toContain('image written');
  });

  test('blockdev --flushbufs fails: the script fails saying the read-back could not be trusted', () => {
    const result = runOnInstance(deviceRoot({ xenNode: loop!.device }), { failing: ['blockdev'] });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('mirage-unikernel-ami helper: blockdev --flushbufs');
    expect(result.stderr).toContain('failed; the read-back could not be trusted');
    expect(result.stdout).not.toContain('image written');
  });
});
