/**
 * The EBS direct uploader fed by a streamed image (blocks made as they are taken, as the handler's
 * image reads the kernel object), against a mocked EBS API: the blocks are pulled only as fast as
 * they are sent, and a block source that fails stops the upload and names the pending snapshot, which
 * the handler then removes by that id (handler/index.ts).
 */
import { createHash } from 'crypto';
import { CompleteSnapshotCommand, EBSClient, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { DeleteSnapshotCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { buildDiskImage } from '../../../lib/disk-image';
import { DirectUploadError, DirectUploadImage, uploadSnapshotDirect } from '../../../lib/unikernel-ami/handler/ebs-direct';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { streamed } from './images';

const MIB = 2 ** 20;
const SNAPSHOT_ID = 'snap-0aaaabbbbccccdddd';
const ebsMock = mockClient(EBSClient);
const ec2Mock = mockClient(EC2Client);
const ebs = new EBSClient({ region: 'us-east-1' });
const ec2 = new EC2Client({ region: 'us-east-1' });

function kernel(bytes: number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4096) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  return data;
}

/** The blocks of an in-memory image handed out asynchronously; counts how many were made and not yet sent. */
function streamedImage(failAfter?: number) {
  const image = buildDiskImage({ kernel: kernel(12 * MIB), name: 'hello' });
  const state = { made: 0, mostAhead: 0, sent: 0 };
  const source: DirectUploadImage = streamed(image, {
    failAfter,
    failure: 'The kernel ended after 4194304 bytes, but the disk was laid out for 12582912',
    onBlock: (made) => {
      state.made = made;
      state.mostAhead = Math.max(state.mostAhead, state.made - state.sent);
    },
  });
  return { image, streamed: source, state };
}

function uploadOptions(image: DirectUploadImage) {
  return {
    image, buildId: 'mua-0011223344556677', volumeSizeGiB: 1, tags: [], encrypted: false, description: 'hello', concurrency: 4,
    retry: { sleep: async () => {} }, log: new StepLog('mua-0011223344556677', Date.now, () => {}),
  };
}

beforeEach(() => {
  ebsMock.reset();
  ec2Mock.reset();
  ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAPSHOT_ID, Status: 'pending' });
  ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'completed' });
  ec2Mock.on(DeleteSnapshotCommand).resolves({});
  // What EC2 answers right after StartSnapshot: it does not list the new snapshot yet.
  ec2Mock.on(DescribeSnapshotsCommand).rejects(Object.assign(new Error(`The snapshot '${SNAPSHOT_ID}' does not exist.`), { name: 'InvalidSnapshot.NotFound' }));
});

test('blocks are made only as fast as they are sent: never more than the requests in flight', async () => {
  // GIVEN requests that take a while
  const { image, streamed, state } = streamedImage();
  ebsMock.on(PutSnapshotBlockCommand).callsFake(async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    state.sent++;
    return {};
  });

  // WHEN
  const result = await uploadSnapshotDirect(ebs, ec2, uploadOptions(streamed));

  // THEN every block was sent once, with its checksum, and at most 4 (the concurrency) plus the one being made were held
  const expected = [...image.nonZeroBlocks()];
  expect(result.blocksSent).toBe(expected.length);
  const sent = ebsMock.commandCalls(PutSnapshotBlockCommand).map((call) => call.args[0].input);
  expect(new Map(sent.map((input) => [input.BlockIndex, input.Checksum]))).toEqual(
    new Map(expected.map((block) => [block.index, createHash('sha256').update(block.data).digest('base64')])),
  );
  expect(state.mostAhead).toBeLessThanOrEqual(5);
});

test('a block source that fails: no CompleteSnapshot, the source\'s error is thrown naming the pending snapshot for the caller to delete', async () => {
  ebsMock.on(PutSnapshotBlockCommand).resolves({});
  const { streamed } = streamedImage(8);

  const failure = await uploadSnapshotDirect(ebs, ec2, uploadOptions(streamed)).catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(DirectUploadError);
  expect((failure as DirectUploadError).message).toMatch(/The kernel ended after 4194304 bytes/);
  expect((failure as DirectUploadError).snapshotId).toBe(SNAPSHOT_ID);
  expect(ebsMock).not.toHaveReceivedCommand(CompleteSnapshotCommand);
  expect(ec2Mock).not.toHaveReceivedCommand(DeleteSnapshotCommand);
  expect(ebsMock.commandCalls(PutSnapshotBlockCommand).length).toBeLessThanOrEqual(8);
});
