/**
 * The EBS direct uploader against a mocked EBS API (aws-sdk-client-mock: no AWS is called).
 * What it sends is checked against an independent scan of the image file written by
 * writeSparseFile, and the blocks it sent are reassembled into a disk that e2fsck and debugfs read.
 */
import { execFileSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  InternalServerException,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  PutSnapshotBlockCommandInput,
  RequestThrottledException,
  ResourceNotFoundException,
  StartSnapshotCommand,
  ValidationException,
} from '@aws-sdk/client-ebs';
import { DeleteSnapshotCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { buildDiskImage, DiskBlock, DiskImage, DiskLayout, writeSparseFile } from '../../../lib/disk-image';
import {
  DirectUploadError,
  DirectUploadOptions,
  snapshotClientToken,
  uploadSnapshotDirect,
} from '../../../lib/unikernel-ami/handler/ebs-direct';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { expectBootableDisk, reassemble } from '../../disk-image/tools';

const BLOCK = 512 * 1024;
const SNAPSHOT_ID = 'snap-0123456789abcdef0';
const BUILD_ID = 'mua-0123456789abcdef';
const TAGS = [
  { Key: 'mirage-unikernel-ami:build-id', Value: BUILD_ID },
  { Key: 'mirage-unikernel-ami:managed', Value: 'true' },
  { Key: 'Name', Value: 'hello' },
];

const ebsMock = mockClient(EBSClient);
const ec2Mock = mockClient(EC2Client);
const ebs = new EBSClient({ region: 'us-east-1' });
const ec2 = new EC2Client({ region: 'us-east-1' });
const noWait = async () => {};

let workDir: string;

/** A kernel of random bytes with a 1.5 MiB run of zeros inside: whole 512 KiB blocks of it must not be sent. */
const KERNEL = Buffer.concat([randomBytes(700 * 1024), Buffer.alloc(1536 * 1024), randomBytes(300 * 1024)]);

function image(layout: DiskLayout = DiskLayout.WHOLE_VOLUME): DiskImage {
  return buildDiskImage({ kernel: KERNEL, name: 'hello', kernelArgs: 'console=hvc0', layout, volumeSizeGiB: 1 });
}

/** Log lines of the last upload, captured so the test output stays readable and the steps can be checked. */
let logLines: string[] = [];

function options(overrides: Partial<DirectUploadOptions> = {}): DirectUploadOptions {
  return {
    image: image(),
    buildId: BUILD_ID,
    volumeSizeGiB: 1,
    tags: TAGS,
    encrypted: false,
    description: 'hello unikernel',
    retry: { sleep: noWait },
    log: new StepLog(BUILD_ID, Date.now, (line) => logLines.push(line)),
    ...overrides,
  };
}

function runTool(tool: string, args: string[], debianPackage: string): string {
  try {
    return execFileSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${tool} is not installed; these tests need it. Install the Debian package: apt-get install ${debianPackage}`);
    }
    throw err;
  }
}

interface ScannedBlock {
  readonly index: number;
  readonly digest: Buffer;
}

/** Reads a disk file 512 KiB at a time and keeps the blocks with a non-zero byte: the test's own notion of what must be sent. */
function scanNonZeroBlocks(file: string): ScannedBlock[] {
  const found: ScannedBlock[] = [];
  const fd = fs.openSync(file, 'r');
  const buffer = Buffer.alloc(BLOCK);
  const zeros = Buffer.alloc(BLOCK);
  try {
    for (let index = 0; fs.readSync(fd, buffer, 0, BLOCK, index * BLOCK) > 0; index++) {
      if (!buffer.equals(zeros)) {
        found.push({ index, digest: createHash('sha256').update(buffer).digest() });
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return found;
}

const references = new Map<DiskLayout, { file: string; blocks: ScannedBlock[] }>();

/** The image written by writeSparseFile and its scanned blocks, made once per layout (scanning 1 GiB takes a while). */
function reference(layout: DiskLayout): { file: string; blocks: ScannedBlock[] } {
  let found = references.get(layout);
  if (!found) {
    const file = path.join(workDir, `reference-${layout}.img`);
    writeSparseFile(image(layout), file);
    found = { file, blocks: scanNonZeroBlocks(file) };
    references.set(layout, found);
  }
  return found;
}

function sentBlocks(): PutSnapshotBlockCommandInput[] {
  return ebsMock.commandCalls(PutSnapshotBlockCommand).map((call) => call.args[0].input);
}

/** The sent blocks as the disk's blocks, to reassemble. */
function sentAsDiskBlocks(): DiskBlock[] {
  return sentBlocks().map((block) => ({ index: block.BlockIndex!, data: block.BlockData as Uint8Array }));
}

beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ebs-direct-test-'));
});

afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

beforeEach(() => {
  ebsMock.reset();
  ec2Mock.reset();
  logLines = [];
  ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAPSHOT_ID, Status: 'pending', BlockSize: BLOCK });
  ebsMock.on(PutSnapshotBlockCommand).resolves({});
  ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'pending' });
  // Right after StartSnapshot, EC2 does not know the new snapshot yet (eventual consistency).
  ec2Mock.on(DescribeSnapshotsCommand).rejects(Object.assign(new Error(`The snapshot '${SNAPSHOT_ID}' does not exist.`), { name: 'InvalidSnapshot.NotFound', $metadata: { httpStatusCode: 400 } }));
});

afterEach(() => {
  // The caller removes a failed upload's snapshot by its id (index.ts); the uploader never deletes.
  expect(ec2Mock).not.toHaveReceivedCommand(DeleteSnapshotCommand);
});

describe.each([DiskLayout.WHOLE_VOLUME, DiskLayout.MBR_PARTITION])('a %s disk image', (layout) => {
  let disk: DiskImage;
  let expected: ScannedBlock[];

  beforeAll(() => {
    disk = image(layout);
    expected = reference(layout).blocks;
  });

  test('exactly the non-zero blocks are sent, each with its index and SHA-256 checksum', async () => {
    // GIVEN a disk image whose kernel holds whole zero blocks (KERNEL)
    // WHEN it is uploaded
    const result = await uploadSnapshotDirect(ebs, ec2, options({ image: disk }));

    // THEN the sent blocks are the ones the file scan found, no more, no fewer
    const sent = sentBlocks().sort((a, b) => a.BlockIndex! - b.BlockIndex!);
    expect(sent.map((block) => [block.BlockIndex, block.Checksum])).toEqual(
      expected.map((block) => [block.index, block.digest.toString('base64')]),
    );
    for (const block of sent) {
      expect(block).toMatchObject({ SnapshotId: SNAPSHOT_ID, DataLength: BLOCK, ChecksumAlgorithm: 'SHA256' });
      expect((block.BlockData as Uint8Array).length).toBe(BLOCK);
    }
    expect(result).toEqual({
      snapshotId: SNAPSHOT_ID,
      blocksSent: expected.length,
      bytesSent: expected.length * BLOCK,
      apiCalls: expected.length + 2,
      snapshotBlocks: expected.length,
    });
  });

  test('CompleteSnapshot carries the block count and the LINEAR checksum that sha256sum computes', async () => {
    // GIVEN the digests of the scanned blocks, concatenated in index order, hashed by sha256sum
    const digestsFile = path.join(workDir, `digests-${layout}.bin`);
    fs.writeFileSync(digestsFile, Buffer.concat(expected.map((block) => block.digest)));
    const aggregateHex = runTool('sha256sum', [digestsFile], 'coreutils').split(' ')[0];

    // WHEN the image is uploaded
    await uploadSnapshotDirect(ebs, ec2, options({ image: disk }));

    // THEN
    expect(ebsMock).toHaveReceivedCommandTimes(CompleteSnapshotCommand, 1);
    expect(ebsMock).toHaveReceivedCommandWith(CompleteSnapshotCommand, {
      SnapshotId: SNAPSHOT_ID,
      ChangedBlocksCount: expected.length,
      Checksum: Buffer.from(aggregateHex, 'hex').toString('base64'),
      ChecksumAlgorithm: 'SHA256',
      ChecksumAggregationMethod: 'LINEAR',
    });
  });

  test('the sent blocks reassemble into the disk, and e2fsck and debugfs read the kernel and menu.lst back', async () => {
    // GIVEN an upload
    await uploadSnapshotDirect(ebs, ec2, options({ image: disk }));

    // WHEN the blocks the mock received are written into an empty file of the volume's size
    const volume = path.join(workDir, `reassembled-${layout}.img`);
    reassemble(sentAsDiskBlocks(), volume, disk.sizeBytes, BLOCK);

    // THEN the volume equals the image byte for byte, and its filesystem is sound; pygrub boots /boot/hello.xen from it
    expect(disk.kernelPath).toBe('/boot/hello.xen');
    runTool('cmp', [volume, reference(layout).file], 'diffutils');
    if (layout === DiskLayout.MBR_PARTITION) {
      const table = JSON.parse(runTool('sfdisk', ['--json', volume], 'fdisk'));
      const [partition] = table.partitiontable.partitions;
      expect(partition.start * 512).toBe(disk.filesystemOffset);
      const filesystem = path.join(workDir, 'reassembled-partition.img');
      reassemble(sentAsDiskBlocks(), filesystem, partition.size * 512, BLOCK, partition.start * 512);
      expectBootableDisk(filesystem, disk, KERNEL, 'console=hvc0');
    } else {
      expectBootableDisk(volume, disk, KERNEL, 'console=hvc0');
    }
  });
});

describe('StartSnapshot', () => {
  test('asks for the volume size, tags, description and a 60-minute timeout, unencrypted unless asked', async () => {
    // WHEN
    await uploadSnapshotDirect(ebs, ec2, options());

    // THEN
    const [start] = ebsMock.commandCalls(StartSnapshotCommand).map((call) => call.args[0].input);
    expect(start).toEqual({
      VolumeSize: 1,
      ClientToken: snapshotClientToken(BUILD_ID),
      Tags: TAGS,
      Description: 'hello unikernel',
      Timeout: 60,
    });
  });

  test('the client token is the same for the same build id and differs between builds', async () => {
    // WHEN the same build runs twice and another build once
    await uploadSnapshotDirect(ebs, ec2, options());
    await uploadSnapshotDirect(ebs, ec2, options());
    await uploadSnapshotDirect(ebs, ec2, options({ buildId: 'mua-fedcba9876543210' }));

    // THEN
    const tokens = ebsMock.commandCalls(StartSnapshotCommand).map((call) => call.args[0].input.ClientToken);
    expect(tokens[0]).toBe(tokens[1]);
    expect(tokens[2]).not.toBe(tokens[0]);
    expect(tokens[0]).toContain(BUILD_ID);
  });

  test('passes Encrypted and the KMS key when encryption is asked for', async () => {
    const kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

    // WHEN
    await uploadSnapshotDirect(ebs, ec2, options({ encrypted: true, kmsKeyArn }));

    // THEN
    expect(ebsMock).toHaveReceivedCommandWith(StartSnapshotCommand, { Encrypted: true, KmsKeyArn: kmsKeyArn });
  });

  /** EBS lists and reads back the blocks of the disk image: the snapshot an earlier attempt completed holds the image. */
  function snapshotHoldsImage(): number {
    const blocks = [...image().nonZeroBlocks(BLOCK)];
    ebsMock.on(ListSnapshotBlocksCommand).resolves({ Blocks: blocks.map((b) => ({ BlockIndex: b.index, BlockToken: `token${b.index}` })) });
    for (const block of blocks) {
      ebsMock.on(GetSnapshotBlockCommand, { BlockIndex: block.index, BlockToken: `token${block.index}` }).resolves({
        BlockData: { transformToByteArray: async () => new Uint8Array(block.data) } as never,
        DataLength: BLOCK,
      });
    }
    return blocks.length;
  }

  test('a retried build gets the original response, Status pending; EC2 says the snapshot is completed: no block is sent again', async () => {
    // GIVEN StartSnapshot answers (same client token) with its original response, and EC2 shows the snapshot completed since
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAPSHOT_ID, Status: 'pending' });
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: SNAPSHOT_ID, State: 'completed' }] });
    const blocks = snapshotHoldsImage();

    // WHEN
    const result = await uploadSnapshotDirect(ebs, ec2, options());

    // THEN its blocks were checked against the image, and none was sent
    expect(result).toEqual({ snapshotId: SNAPSHOT_ID, blocksSent: 0, bytesSent: 0, apiCalls: 1, snapshotBlocks: blocks });
    expect(ebsMock).toHaveReceivedCommandWith(ListSnapshotBlocksCommand, { SnapshotId: SNAPSHOT_ID });
    expect(ebsMock).toHaveReceivedCommandTimes(GetSnapshotBlockCommand, blocks);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeSnapshotsCommand, { SnapshotIds: [SNAPSHOT_ID] });
    expect(ebsMock).not.toHaveReceivedCommand(PutSnapshotBlockCommand);
    expect(ebsMock).not.toHaveReceivedCommand(CompleteSnapshotCommand);
  });

  test('a retried build whose completed snapshot lacks a block of the image fails, naming the snapshot, and sends nothing', async () => {
    // GIVEN a completed snapshot (an earlier attempt's, or an early answer) that lists one block fewer than the image writes
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAPSHOT_ID, Status: 'pending' });
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: SNAPSHOT_ID, State: 'completed' }] });
    const blocks = [...image().nonZeroBlocks(BLOCK)].slice(1);
    ebsMock.on(ListSnapshotBlocksCommand).resolves({ Blocks: blocks.map((b) => ({ BlockIndex: b.index, BlockToken: `token${b.index}` })) });

    // WHEN
    const upload = uploadSnapshotDirect(ebs, ec2, options());

    // THEN
    await expect(upload).rejects.toThrow(new RegExp(`Snapshot ${SNAPSHOT_ID} of build ${BUILD_ID} is completed but does not hold the disk image \\(it lists ${blocks.length} blocks, the image writes ${blocks.length + 1}: 1 missing`));
    expect(ebsMock).not.toHaveReceivedCommand(PutSnapshotBlockCommand);
  });

  test('a retried build whose completed snapshot EC2 does not show yet: the refused writes end in success once EC2 shows it completed', async () => {
    // GIVEN the original response (pending), EC2 not knowing the snapshot at first, and writes refused because it is completed
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAPSHOT_ID, Status: 'pending' });
    ec2Mock.on(DescribeSnapshotsCommand)
      .rejectsOnce(Object.assign(new Error('not yet'), { name: 'InvalidSnapshot.NotFound' }))
      .resolves({ Snapshots: [{ SnapshotId: SNAPSHOT_ID, State: 'completed' }] });
    ebsMock.on(PutSnapshotBlockCommand).rejects(new ValidationException({ message: 'The snapshot is not pending', $metadata: { httpStatusCode: 400 }, Reason: 'INVALID_SNAPSHOT_ID' }));
    snapshotHoldsImage();

    // WHEN
    const result = await uploadSnapshotDirect(ebs, ec2, options({ concurrency: 1 }));

    // THEN
    expect(result).toMatchObject({ snapshotId: SNAPSHOT_ID, blocksSent: 0 });
    expect(ebsMock).not.toHaveReceivedCommand(CompleteSnapshotCommand);
  });
});

describe('retries', () => {
  test('a block is retried through the not-found window and throttling, then succeeds', async () => {
    // GIVEN block writes that first find no snapshot (both ways EBS says it), then are throttled
    const notFound = new ResourceNotFoundException({ message: 'The snapshot does not exist', $metadata: { httpStatusCode: 404 }, Reason: 'SNAPSHOT_NOT_FOUND' });
    const notFoundValidation = new ValidationException({ message: 'The snapshot does not exist', $metadata: { httpStatusCode: 400 }, Reason: 'SNAPSHOT_NOT_FOUND' as never });
    const throttled = new RequestThrottledException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 }, Reason: 'ACCOUNT_THROTTLED' });
    ebsMock.on(PutSnapshotBlockCommand)
      .rejectsOnce(notFound).rejectsOnce(notFoundValidation).rejectsOnce(throttled)
      .resolves({});
    const delays: number[] = [];

    // WHEN
    const result = await uploadSnapshotDirect(ebs, ec2, options({
      concurrency: 1,
      retry: { sleep: async (ms) => { delays.push(ms); } },
    }));

    // THEN three attempts failed and were waited for, every block got through, nothing was deleted
    expect(delays).toHaveLength(3);
    const blocks = [...image().nonZeroBlocks()].length;
    expect(result.blocksSent).toBe(blocks);
    expect(result.apiCalls).toBe(1 + blocks + 3 + 1);
    expect(ebsMock).toHaveReceivedCommandTimes(PutSnapshotBlockCommand, blocks + 3);
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteSnapshotCommand);
  });

  test('a validation error other than not-found is not retried', async () => {
    // GIVEN
    ebsMock.on(PutSnapshotBlockCommand).rejects(
      new ValidationException({ message: 'Invalid block', $metadata: { httpStatusCode: 400 }, Reason: 'INVALID_BLOCK' }));

    // WHEN
    const upload = uploadSnapshotDirect(ebs, ec2, options({ concurrency: 1 }));

    // THEN
    await expect(upload).rejects.toThrow(/Invalid block/);
    expect(ebsMock).toHaveReceivedCommandTimes(PutSnapshotBlockCommand, 1);
  });
});

describe('concurrency', () => {
  test('no more than `concurrency` blocks are in flight or held, and all are sent', async () => {
    // GIVEN a mock that counts requests in flight, and an image that counts the blocks it has handed out
    let inFlight = 0;
    let maxInFlight = 0;
    ebsMock.on(PutSnapshotBlockCommand).callsFake(async () => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      return {};
    });
    const disk = image();
    let handedOut = 0;
    let maxHeld = 0;
    const countingImage: DiskImage = Object.assign(Object.create(disk), {
      *nonZeroBlocks(blockSize?: number) {
        for (const block of disk.nonZeroBlocks(blockSize)) {
          handedOut++;
          maxHeld = Math.max(maxHeld, handedOut - ebsMock.commandCalls(PutSnapshotBlockCommand).length + inFlight);
          yield block;
        }
      },
    });

    // WHEN
    const result = await uploadSnapshotDirect(ebs, ec2, options({ image: countingImage, concurrency: 3 }));

    // THEN
    expect(result.blocksSent).toBeGreaterThan(3);
    expect(maxInFlight).toBe(3);
    expect(maxHeld).toBeLessThanOrEqual(3);
  });

  test('blocks that finish out of order still give the aggregate checksum in index order', async () => {
    // GIVEN a mock that answers every block only once all are in flight, the last block first
    const disk = image();
    const blockCount = [...disk.nonZeroBlocks()].length;
    const pending: { index: number; resolve: () => void }[] = [];
    const completed: number[] = [];
    ebsMock.on(PutSnapshotBlockCommand).callsFake((input: PutSnapshotBlockCommandInput) => new Promise<object>((resolve) => {
      pending.push({ index: input.BlockIndex!, resolve: () => { completed.push(input.BlockIndex!); resolve({}); } });
      if (pending.length === blockCount) {
        pending.sort((a, b) => b.index - a.index).forEach((block) => block.resolve());
      }
    }));
    const expected = reference(DiskLayout.WHOLE_VOLUME).blocks;

    // WHEN
    await uploadSnapshotDirect(ebs, ec2, options({ image: disk, concurrency: blockCount }));

    // THEN the blocks did complete in descending order, and the checksum is over ascending order
    expect(completed).toEqual(expected.map((block) => block.index).reverse());
    const linear = createHash('sha256').update(Buffer.concat(expected.map((block) => block.digest))).digest('base64');
    expect(ebsMock).toHaveReceivedCommandWith(CompleteSnapshotCommand, { Checksum: linear });
  });
});

describe('failure after StartSnapshot', () => {
  test('a block that keeps failing fails the upload with an error naming the block and the snapshot (which the caller removes)', async () => {
    // GIVEN the second block always meets a server error
    const failingIndex = [...image().nonZeroBlocks()][1].index;
    ebsMock.on(PutSnapshotBlockCommand, { BlockIndex: failingIndex })
      .rejects(new InternalServerException({ message: 'We encountered an internal error', $metadata: { httpStatusCode: 500 } }));

    // WHEN
    const upload = uploadSnapshotDirect(ebs, ec2, options({ concurrency: 1, retry: { sleep: noWait, attempts: 4 } }));

    // THEN
    const error: DirectUploadError = await upload.then(() => { throw new Error('the upload should have failed'); }, (err) => err);
    expect(error).toBeInstanceOf(DirectUploadError);
    expect(error.message).toContain(`block ${failingIndex} `);
    expect(error.message).toContain(SNAPSHOT_ID);
    expect(error.message).toContain('internal error');
    expect(error.snapshotId).toBe(SNAPSHOT_ID);
    expect(error.blockIndex).toBe(failingIndex);
    expect(ebsMock).toHaveReceivedCommandTimes(PutSnapshotBlockCommand, 1 + 4);
    expect(ebsMock).not.toHaveReceivedCommand(CompleteSnapshotCommand);
  });

  test('a failing CompleteSnapshot names the snapshot', async () => {
    // GIVEN
    ebsMock.on(CompleteSnapshotCommand).rejects(
      new ValidationException({ message: 'Checksum mismatch', $metadata: { httpStatusCode: 400 }, Reason: 'INVALID_PARAMETER_VALUE' }));

    // WHEN
    const upload = uploadSnapshotDirect(ebs, ec2, options());

    // THEN
    await expect(upload).rejects.toThrow(new RegExp(`CompleteSnapshot of snapshot ${SNAPSHOT_ID}.*Checksum mismatch`));
    await expect(upload).rejects.toMatchObject({ snapshotId: SNAPSHOT_ID });
  });

  test('a snapshot EC2 shows in the error state is not written to', async () => {
    // GIVEN
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: SNAPSHOT_ID, State: 'error' }] });

    // WHEN
    const upload = uploadSnapshotDirect(ebs, ec2, options());

    // THEN
    await expect(upload).rejects.toThrow(`Snapshot ${SNAPSHOT_ID} of build ${BUILD_ID} is in the error state.`);
    await expect(upload).rejects.toMatchObject({ snapshotId: SNAPSHOT_ID });
    expect(ebsMock).not.toHaveReceivedCommand(PutSnapshotBlockCommand);
  });

  test('a DescribeSnapshots that EC2 refuses fails the upload, naming the snapshot: nothing is written to a snapshot whose state is unknown', async () => {
    ec2Mock.on(DescribeSnapshotsCommand).rejects(Object.assign(new Error('not authorized'), { name: 'UnauthorizedOperation' }));
    const upload = uploadSnapshotDirect(ebs, ec2, options());
    await expect(upload).rejects.toMatchObject({ name: 'DirectUploadError', snapshotId: SNAPSHOT_ID });
    expect(ebsMock).not.toHaveReceivedCommand(PutSnapshotBlockCommand);
  });
});

describe('log', () => {
  test('one JSON line per step, each naming the build and the snapshot', async () => {
    // WHEN
    await uploadSnapshotDirect(ebs, ec2, options());

    // THEN
    const entries = logLines.map((line) => JSON.parse(line));
    // The stage line (stages.ts) says how many blocks were written, for `watch`.
    expect(entries.map((entry) => entry.step)).toEqual(['ebs-direct:start-snapshot', 'ebs-direct:put-blocks', 'stage', 'ebs-direct:complete-snapshot']);
    expect(entries[2]).toMatchObject({ stage: 'blocks-written', blocks: entries[1].blocksSent, totalBlocks: entries[1].blocksSent });
    for (const entry of entries) {
      expect(entry).toMatchObject({ buildId: BUILD_ID, snapshotId: SNAPSHOT_ID, elapsedMs: expect.any(Number) });
    }
  });
});

describe('bad options', () => {
  test.each([
    [{ volumeSizeGiB: 0 }, /volumeSizeGiB must be a whole number of GiB from 1 to 65536.*got 0/],
    [{ volumeSizeGiB: 1.5 }, /volumeSizeGiB.*got 1.5/],
    [{ timeoutMinutes: 5 }, /timeoutMinutes must be a whole number from 10 to 4320.*got 5/],
    [{ concurrency: 0 }, /concurrency must be a whole number of at least 1.*got 0/],
    [{ buildId: '' }, /buildId must not be empty/],
    [{ kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/k' }, /kmsKeyArn .* was given but encrypted is false/],
  ])('%p is refused before any AWS call', async (overrides, message) => {
    await expect(uploadSnapshotDirect(ebs, ec2, options(overrides))).rejects.toThrow(message);
    expect(ebsMock).not.toHaveReceivedCommand(StartSnapshotCommand);
  });

  test('an image larger than the snapshot is refused', async () => {
    // GIVEN an image built for 2 GiB, uploaded as a 1 GiB snapshot
    const twoGiB = buildDiskImage({ kernel: KERNEL, name: 'hello', volumeSizeGiB: 2 });

    // WHEN / THEN
    await expect(uploadSnapshotDirect(ebs, ec2, options({ image: twoGiB, volumeSizeGiB: 1 })))
      .rejects.toThrow(/disk image is 2147483648 bytes, larger than the 1 GiB snapshot/);
    expect(ebsMock).not.toHaveReceivedCommand(StartSnapshotCommand);
  });
});
