/**
 * The helper script, run for real with bash against a sparse file standing in for the EBS volume,
 * fed by the staged files the handler would upload. What it writes is read back with e2fsck and debugfs.
 */
import { readFileSync, writeFileSync } from 'fs';
import { gunzipSync, gzipSync } from 'zlib';
import { buildDiskImage, DiskImage, DiskLayout } from '../../../lib/disk-image';
import { encodeStagedImage } from '../../../lib/unikernel-ami/handler/staging';
import { BLOCK_TOOL_PY, helperScript, helperUserData, runShellScriptCommands, shellQuote } from '../../../lib/unikernel-ami/handler/helper-script';
import { blockDigests, expectBootableDisk, extractRegion, fakeKernel, makeTempDir, readBytes, runTool, scanNonZeroBlocks } from '../../disk-image/tools';

const GIB = 2 ** 30;
const BLOCK = 524288;
const KERNEL_ARGS = 'console=hvc0 --ipv4=10.0.0.2/24';
/** Spans several 512 KiB blocks, with an all-zero stretch that must not travel. */
const KERNEL = fakeKernel(5 * 2 ** 20 + 12345);

let tmp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  tmp = makeTempDir();
});
afterEach(() => tmp.remove());

interface Staged {
  readonly image: DiskImage;
  readonly blocks: string;
  readonly manifest: string;
  readonly manifestText: string;
}

async function stage(layout = DiskLayout.WHOLE_VOLUME): Promise<Staged> {
  const image = buildDiskImage({ kernel: KERNEL, name: 'hello', kernelArgs: KERNEL_ARGS, layout, volumeSizeGiB: 1 });
  const staged = await encodeStagedImage(image);
  const blocks = tmp.path('blocks.gz');
  const manifest = tmp.path('manifest.txt');
  writeFileSync(blocks, staged.blocksGz);
  writeFileSync(manifest, staged.manifest);
  return { image, blocks, manifest, manifestText: staged.manifest };
}

/** A sparse file of the given size: the stand-in for a new (all-zero) EBS volume. */
function blankVolume(sizeBytes = GIB): string {
  const device = tmp.path('volume.img');
  runTool('truncate', ['-s', String(sizeBytes), device]);
  return device;
}

function runScript(staged: Pick<Staged, 'blocks' | 'manifest'>, device: string) {
  const script = helperScript({ blocksSource: staged.blocks, manifestSource: staged.manifest, devicePath: device });
  return runTool('bash', ['-c', script]);
}

/** 512-byte sectors the file occupies on disk: 0 means nothing was ever written to it. */
function allocatedSectors(file: string): number {
  return Number(runTool('stat', ['-c', '%b', file]).stdout.trim());
}

describe('helper script', () => {
  test('writes the whole-volume image: e2fsck is clean, debugfs reads the kernel and menu.lst back exactly', async () => {
    // GIVEN the staged files and a blank 1 GiB volume
    const staged = await stage();
    const device = blankVolume();
    // WHEN
    const result = runScript(staged, device);
    // THEN
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('image written to');
    expectBootableDisk(device, staged.image, KERNEL, KERNEL_ARGS);
  });

  test('writes each block at its index: the volume has exactly the image\'s non-zero blocks', async () => {
    const staged = await stage();
    const device = blankVolume();
    expect(runScript(staged, device).status).toBe(0);
    expect(scanNonZeroBlocks(device, BLOCK)).toEqual(blockDigests(staged.image.nonZeroBlocks(BLOCK)));
  });

  test('writes the MBR layout: the first partition holds a clean filesystem with the boot files', async () => {
    const staged = await stage(DiskLayout.MBR_PARTITION);
    const device = blankVolume();
    expect(runScript(staged, device).status).toBe(0);
    // sfdisk (util-linux) reads the partition table the script wrote
    const table = JSON.parse(runTool('sfdisk', ['--json', device]).stdout).partitiontable;
    expect(table.label).toBe('dos');
    const partition = table.partitions[0];
    const filesystem = tmp.path('partition.img');
    extractRegion(device, filesystem, partition.start * 512, partition.size * 512);
    expectBootableDisk(filesystem, staged.image, KERNEL, KERNEL_ARGS);
  });

  test('a manifest checksum that does not match blocks.gz: exits non-zero and writes nothing', async () => {
    // GIVEN a manifest whose second block's checksum is wrong
    const staged = await stage();
    const lines = staged.manifestText.split('\n');
    const [index, digest] = lines[2].split(' ');
    lines[2] = `${index} ${digest.slice(0, -1)}${digest.endsWith('0') ? '1' : '0'}`;
    writeFileSync(staged.manifest, lines.join('\n'));
    const device = blankVolume();
    // WHEN
    const result = runScript(staged, device);
    // THEN
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`block ${index} of`);
    expect(result.stderr).toContain('does not match its manifest checksum');
    expect(allocatedSectors(device)).toBe(0);
  });

  test('a corrupt blocks.gz (a block changed in transit): exits non-zero and writes nothing', async () => {
    const staged = await stage();
    const encoded = await encodeStagedImage(staged.image);
    const tampered = gunzipSync(encoded.blocksGz);
    tampered[BLOCK + 100] ^= 0xff;
    writeFileSync(staged.blocks, gzipSync(tampered));
    const device = blankVolume();
    const result = runScript(staged, device);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/block \d+ of .* does not match its manifest checksum/);
    expect(allocatedSectors(device)).toBe(0);
  });

  test('a manifest that lists fewer blocks than blocks.gz holds is refused', async () => {
    const staged = await stage();
    const lines = staged.manifestText.trimEnd().split('\n');
    const shortened = [lines[0].replace(/blocks=\d+/, `blocks=${lines.length - 2}`), ...lines.slice(1, -1)];
    writeFileSync(staged.manifest, shortened.join('\n') + '\n');
    const result = runScript(staged, blankVolume());
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('holds more blocks than the manifest lists');
  });

  test('a target of the wrong size is refused before anything is written', async () => {
    // GIVEN a 2 GiB "device" for an image of a 1 GiB volume
    const staged = await stage();
    const device = blankVolume(2 * GIB);
    // WHEN
    const result = runScript(staged, device);
    // THEN
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`holds ${2 * GIB} bytes but the image is for a ${GIB}-byte volume; refusing to write`);
    expect(allocatedSectors(device)).toBe(0);
  });

  test('a missing target is refused', async () => {
    const staged = await stage();
    const result = runScript(staged, tmp.path('no-such-device'));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('is neither a block device nor a file');
  });

  test('read-back verification catches a block that differs on the volume', async () => {
    // GIVEN a volume written correctly, then one byte of a listed block changed behind the script's back
    const staged = await stage();
    const device = blankVolume();
    expect(runScript(staged, device).status).toBe(0);
    const firstListed = Number(staged.manifestText.split('\n')[1].split(' ')[0]);
    const byte = readBytes(device, firstListed * BLOCK + 7, 1);
    runTool('python3', ['-c', `import os;fd=os.open(${JSON.stringify(device)},os.O_WRONLY);os.pwrite(fd,bytes([${byte[0] ^ 1}]),${firstListed * BLOCK + 7})`]);
    // WHEN the verify step runs on its own
    const result = runTool('python3', ['-c', BLOCK_TOOL_PY, 'verify', device, staged.manifest]);
    // THEN
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`read-back verification failed for 1 of`);
    expect(result.stderr).toContain(`(first: [${firstListed}])`);
  });

  test('through the SSM command wrapper: /bin/sh writes the script to a file, bash runs it, and its exit status is the command\'s', async () => {
    const staged = await stage();
    const device = blankVolume();
    const commands = runShellScriptCommands(helperScript({ blocksSource: staged.blocks, manifestSource: staged.manifest, devicePath: device }));
    const good = runTool('sh', ['-c', commands.join('\n')]);
    expect(good.status).toBe(0);
    expectBootableDisk(device, staged.image, KERNEL, KERNEL_ARGS);

    const refused = runShellScriptCommands(helperScript({ blocksSource: staged.blocks, manifestSource: staged.manifest, devicePath: blankVolume(GIB + BLOCK) }));
    expect(runTool('sh', ['-c', refused.join('\n')]).status).not.toBe(0);
  });
});

describe('the helper script run twice at once (SendCommand has no client token)', () => {
  test('while another run holds the volume, the script waits and writes nothing', async () => {
    // GIVEN the volume's lock held by another process
    const staged = await stage();
    const device = blankVolume();
    const script = helperScript({ blocksSource: staged.blocks, manifestSource: staged.manifest, devicePath: device });
    // WHEN the script runs meanwhile (and is stopped after 8 s)
    const result = runTool('bash', ['-c', `exec 9<${shellQuote(device)}; flock 9; timeout 8 bash -c ${shellQuote(script)}`]);
    // THEN it was still waiting for the lock: stopped by the timeout, nothing written
    expect(result.status).toBe(124);
    expect(allocatedSectors(device)).toBe(0);
  });

  test('two runs started together both succeed, and the volume holds the image', async () => {
    const staged = await stage();
    const device = blankVolume();
    const script = helperScript({ blocksSource: staged.blocks, manifestSource: staged.manifest, devicePath: device });
    const log = tmp.path('runs.log');
    const both = runTool('bash', ['-c', `
      run() { bash -c "$1" > /dev/null 2>&1; echo "exit $2 $?" >> ${shellQuote(log)}; }
      run ${shellQuote(script)} a & run ${shellQuote(script)} b & wait`]);
    expect(both.status).toBe(0);
    expect(readFileSync(log, 'utf8').trim().split('\n').sort()).toEqual(['exit a 0', 'exit b 0']);
    expectBootableDisk(device, staged.image, KERNEL, KERNEL_ARGS);
  });
});

describe('the helper\'s user data', () => {
  test('schedules the helper\'s own shutdown (which terminates it) after the given minutes, as valid bash', () => {
    // GIVEN a `shutdown` on PATH that records its arguments
    const bin = tmp.path('bin');
    runTool('mkdir', [bin]);
    writeFileSync(`${bin}/shutdown`, `#!/bin/sh\nprintf '%s\\n' "$@" > ${shellQuote(tmp.path('shutdown-args'))}\n`, { mode: 0o755 });
    const userData = helperUserData('mua-0123456789abcdef', 90);
    // WHEN cloud-init would run it
    const result = runTool('env', [`PATH=${bin}:/usr/bin:/bin`, 'bash', '-c', userData]);
    // THEN
    expect(result.status).toBe(0);
    expect(readFileSync(tmp.path('shutdown-args'), 'utf8').split('\n').slice(0, 2)).toEqual(['-h', '+90']);
    expect(userData.startsWith('#!/bin/bash\n')).toBe(true);
    expect(() => helperUserData('mua-0123456789abcdef', 0)).toThrow(/whole number of minutes/);
  });
});

describe('helperScript parameters', () => {
  test('values are quoted: a path with quotes and spaces reaches the script intact', async () => {
    const staged = await stage();
    const odd = tmp.path(`it's a "manifest" $(touch pwned).txt`);
    writeFileSync(odd, staged.manifestText);
    const result = runScript({ blocks: staged.blocks, manifest: odd }, blankVolume());
    expect(result.status).toBe(0);
    expect(runTool('test', ['-e', tmp.path('pwned')]).status).not.toBe(0);
  });

  test('shellQuote makes one word of anything', () => {
    const value = `a'b "c" $d \`e\``;
    expect(runTool('sh', ['-c', `printf %s ${shellQuote(value)}`]).stdout).toBe(value);
  });

  test('the helper finds the volume by its id; the id must look like one', () => {
    const script = helperScript({ blocksSource: 's3://b/builds/x/blocks.gz', manifestSource: 's3://b/builds/x/manifest.txt', volumeId: 'vol-0123456789abcdef0' });
    expect(script).toContain(`VOLUME_ID='vol-0123456789abcdef0'`);
    expect(script).toContain('nvme-Amazon_Elastic_Block_Store_${VOLUME_ID/-/}');
    expect(() => helperScript({ blocksSource: 'a', manifestSource: 'b', volumeId: 'vol-x; rm -rf /' })).toThrow(/'vol-x; rm -rf \/' is not an EBS volume id/);
    expect(() => helperScript({ blocksSource: 'a', manifestSource: 'b' })).toThrow(/exactly one of volumeId/);
  });

  test('https:// sources (presigned URLs) are downloaded with curl, retried; a failure names the object, never the signed URL', () => {
    // GIVEN a `curl` on PATH that records its arguments and fails as curl does on HTTP 403
    const bin = tmp.path('bin');
    runTool('mkdir', [bin]);
    writeFileSync(`${bin}/curl`, `#!/bin/sh\necho "$@" > ${shellQuote(tmp.path('curl-args'))}\necho "curl: (22) The requested URL returned error: 403" >&2\nexit 22\n`, { mode: 0o755 });
    const url = 'https://staging.s3.us-east-1.amazonaws.com/builds/mua-1/blocks.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0123abcd';
    const script = helperScript({ blocksSource: url, manifestSource: 'https://staging.s3.us-east-1.amazonaws.com/builds/mua-1/manifest.txt?x=1', devicePath: '/nonexistent' });
    // WHEN
    const result = runTool('env', [`PATH=${bin}:/usr/bin:/bin`, 'bash', '-c', script]);
    // THEN the script stops at the failed download, saying which object, with the signature nowhere
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('mirage-unikernel-ami helper: could not download https://staging.s3.us-east-1.amazonaws.com/builds/mua-1/blocks.gz (curl exit 22: curl: (22) The requested URL returned error: 403)');
    expect(result.stderr + result.stdout).not.toContain('X-Amz-Signature');
    const args = readFileSync(tmp.path('curl-args'), 'utf8');
    expect(args).toContain('--fail');
    expect(args).toMatch(/--retry 5 .*--retry-all-errors/);
    expect(args).toContain(url);
  });

  test('the SSM commands hold no {{ }}, which SSM would take for a parameter reference', () => {
    const commands = runShellScriptCommands(helperScript({ blocksSource: 's3://b/k', manifestSource: 's3://b/m', volumeId: 'vol-0123456789abcdef0' }));
    expect(commands.join('\n')).not.toMatch(/\{\{|\}\}/);
  });
});
