/**
 * The whole life of an ebs-direct build through the handler's onEvent and isComplete, as the CDK
 * provider framework drives it (test/fixtures/lifecycle.ts), against the strict fake AWS account,
 * whose EBS direct APIs keep the blocks written (test/fixtures/fake-aws/ebs.ts).
 */
import { buildDiskImage, DiskLayout } from '../../../lib/disk-image';
import { isComplete, onEvent } from '../../../lib/unikernel-ami/handler/index';
import { BUILD_ID_TAG, MANAGED_TAG, STACK_TAG } from '../../../lib/unikernel-ami/types';
import {
  createEvent,
  ebsDirectProperties,
  isCompleteEvent,
  KERNEL_BUCKET,
  KERNEL_KEY,
  KERNEL_VERSION,
  RESPONSE_URL,
  STACK_NAME,
  X86_64_AKI,
} from '../../fixtures/custom-resource';
import { expectBootableDisk, makeTempDir, reassemble } from '../../disk-image/tools';
import { useFakeAws } from '../../fixtures/fake-aws';
import { CREATE_FAILED_MARKER, DEFAULT_KERNEL, runLifecycle } from '../../fixtures/lifecycle';

const BLOCK = 512 * 1024;
const KERNEL = DEFAULT_KERNEL;

/** The calls the ebs-direct strategy's IAM role allows: anything else would be refused in AWS, so the handler must not make it. */
const ALLOWED_CALLS = new Set([
  'ebs:StartSnapshot', 'ebs:PutSnapshotBlock', 'ebs:CompleteSnapshot', 'ebs:ListSnapshotBlocks', 'ebs:GetSnapshotBlock',
  'ec2:DescribeSnapshots', 'ec2:DescribeImages', 'ec2:RegisterImage', 'ec2:CreateTags', 'ec2:DeleteTags', 'ec2:DeregisterImage', 'ec2:DeleteSnapshot',
  's3:GetObject',
  // the encryption-by-default check (encryption-default.ts)
  'ec2:GetEbsEncryptionByDefault', 'ec2:GetEbsDefaultKmsKeyId', 'kms:DescribeKey',
  // what the AMI offers beyond its disk (distribution.ts): read back on every Update that keeps the AMI
  'ec2:DescribeImageAttribute', 'ec2:ModifyImageAttribute', 'ec2:DescribeSnapshotAttribute', 'ec2:ModifySnapshotAttribute',
  'ec2:EnableImageDeprecation', 'ec2:DisableImageDeprecation', 'ec2:EnableImageDeregistrationProtection', 'ec2:DisableImageDeregistrationProtection',
  'ec2:GetImageBlockPublicAccessState',
]);

const { aws, logLines } = useFakeAws();

afterEach(() => {
  // Whatever happened in the test, only calls the ebs-direct role allows were made, and the presigned URL was never logged.
  const made = new Set(aws.requests.filter((r) => r.principal === 'handler').map((r) => `${r.service}:${r.action}`));
  expect([...made].filter((call) => !ALLOWED_CALLS.has(call))).toEqual([]);
  expect(logLines.join('\n')).not.toContain(RESPONSE_URL);
});

describe('Create', () => {
  test('uploads the disk, waits for the snapshot, registers a paravirtual AMI with the PV-GRUB kernel', async () => {
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });

    // THEN the kernel object version was read, and one snapshot was written and completed
    const [created] = result.outcomes;
    const buildId = created.physicalResourceId;
    expect(created.status).toBe('SUCCESS');
    expect(aws.handlerRequests('GetObject')[0].input).toMatchObject({ Bucket: KERNEL_BUCKET, Key: KERNEL_KEY, VersionId: KERNEL_VERSION });
    expect(aws.handlerRequests('StartSnapshot')).toHaveLength(1);
    expect(aws.handlerRequests('StartSnapshot')[0].input).toMatchObject({
      VolumeSize: 1,
      Tags: expect.arrayContaining([
        { Key: BUILD_ID_TAG, Value: buildId },
        { Key: MANAGED_TAG, Value: 'true' },
        { Key: STACK_TAG, Value: STACK_NAME },
        { Key: 'Name', Value: 'hello' },
        { Key: 'project', Value: 'hello-unikernel' },
      ]),
    });
    const [snapshot] = aws.world.snapshots.values();
    expect(snapshot.id).toBe(created.data!.SnapshotId);
    // (right after StartSnapshot, block writes meet SNAPSHOT_NOT_FOUND for a moment and are retried)
    const written = aws.handlerRequests('PutSnapshotBlock').filter((r) => !r.error);
    expect(aws.handlerRequests('CompleteSnapshot')[0].input).toMatchObject({ SnapshotId: snapshot.id, ChangedBlocksCount: written.length });
    expect(written.length).toBe(snapshot.direct!.blocks.size);

    // AND the AMI is paravirtual, boots through the PV-GRUB AKI from /dev/sda1 backed by that snapshot, and has no HVM-only flags
    expect(aws.handlerRequests('RegisterImage')).toHaveLength(1);
    const register = aws.handlerRequests('RegisterImage')[0].input as Record<string, unknown>;
    expect(register).toMatchObject({
      Name: `hello-${buildId}`,
      VirtualizationType: 'paravirtual',
      Architecture: 'x86_64',
      KernelId: X86_64_AKI,
      RootDeviceName: '/dev/sda1',
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: expect.objectContaining({ SnapshotId: snapshot.id, DeleteOnTermination: true, VolumeSize: 1 }) }],
    });
    expect(register.EnaSupport).toBeUndefined();
    expect(register.SriovNetSupport).toBeUndefined();
    expect(created.data).toEqual({ ImageId: expect.stringMatching(/^ami-/), SnapshotId: snapshot.id, KernelId: X86_64_AKI, ImageName: `hello-${created.physicalResourceId}` });
    expect(result.leaks).toEqual([]);
  });

  test('the snapshot\'s blocks hold a filesystem from which debugfs reads the kernel fetched from S3', async () => {
    // GIVEN / WHEN
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });

    // THEN
    const snapshot = aws.world.snapshots.get(result.outcomes[0].data!.SnapshotId)!;
    const image = buildDiskImage({ kernel: KERNEL, name: 'hello', kernelArgs: '', layout: DiskLayout.WHOLE_VOLUME, volumeSizeGiB: 1 });
    expect(image.kernelPath).toBe('/boot/hello.xen');
    const temp = makeTempDir();
    try {
      const volume = temp.path('volume.img');
      reassemble([...snapshot.direct!.blocks].map(([index, block]) => ({ index, data: block.data })), volume, 2 ** 30, BLOCK);
      expectBootableDisk(volume, image, KERNEL, '');
    } finally {
      temp.remove();
    }
  });

  test('a retried Create (same request) gets StartSnapshot\'s original response, sees from EC2 that the snapshot is completed, and sends nothing again', async () => {
    // GIVEN a Create whose snapshot AWS has completed
    aws.putObject(KERNEL_BUCKET, KERNEL_KEY, KERNEL, KERNEL_VERSION);
    const event = createEvent(ebsDirectProperties());
    const first = await aws.drive(onEvent(event));
    await aws.advance(5 * 60_000);
    expect(aws.world.snapshots.get(first.BuildState.SnapshotId!)!.state).toBe('completed');
    aws.requests.length = 0;

    // WHEN the same request arrives again
    const second = await aws.drive(onEvent(event));

    // THEN
    expect(second).toEqual({ ...first, BuildState: { ...first.BuildState, StartedAt: expect.any(Number) } });
    expect(aws.world.snapshots.size).toBe(1);
    expect(aws.handlerRequests('StartSnapshot')).toHaveLength(1);
    expect(aws.handlerRequests('DescribeSnapshots')[0].input).toEqual({ SnapshotIds: [first.BuildState.SnapshotId] });
    expect(aws.handlerRequests('PutSnapshotBlock')).toEqual([]);
    expect(aws.handlerRequests('CompleteSnapshot')).toEqual([]);
    // It did not complete the snapshot itself: it checked the snapshot's blocks before using it.
    expect(aws.handlerRequests('ListSnapshotBlocks').length).toBeGreaterThan(0);
  });

  test('a block that cannot be written fails the Create, naming the block, and leaves no snapshot', async () => {
    // WHEN (the failed-create lifecycle has EBS refuse a block for good)
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'failed-create' });

    // THEN
    expect(result.outcomes[0]).toMatchObject({ status: 'FAILED', physicalResourceId: CREATE_FAILED_MARKER });
    expect(result.outcomes[0].failureReason).toMatch(/PutSnapshotBlock of block \d+ .*snap-.*The block data is not valid/);
    expect(result.outcomes[1]).toMatchObject({ requestType: 'Delete', ignoredByFramework: true });
    expect(aws.handlerRequests('DeleteSnapshot').length).toBeGreaterThan(0);
    expect(aws.world.snapshots.size).toBe(0);
    expect(aws.handlerRequests('RegisterImage')).toEqual([]);
  });

  test('a snapshot that ends in error fails the build, which removes it', async () => {
    // GIVEN EC2 reports the snapshot failed
    aws.injectFault({ kind: 'error-state', service: 'ec2', action: 'DescribeSnapshots', phase: 'Create/isComplete' });

    // WHEN
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });

    // THEN
    expect(result.outcomes[0].status).toBe('FAILED');
    expect(result.outcomes[0].failureReason).toMatch(/Snapshot snap-\w+ failed/);
    expect(aws.world.snapshots.size).toBe(0);
    expect(result.leaks).toEqual([]);
  });

  test('encryption with a KMS key reaches StartSnapshot', async () => {
    const kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create', properties: { Encrypted: 'true', KmsKeyArn: kmsKeyArn } });
    expect(aws.handlerRequests('StartSnapshot')[0].input).toMatchObject({ Encrypted: true, KmsKeyArn: kmsKeyArn });
  });
});

describe('Update', () => {
  test('a changed kernel command line is a new build with a new physical id and its own snapshot; the old one goes with CloudFormation\'s cleanup', async () => {
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'rebuild' });
    const [created, updated, cleanup] = result.outcomes;
    expect(updated.status).toBe('SUCCESS');
    expect(updated.physicalResourceId).not.toBe(created.physicalResourceId);
    expect(cleanup).toMatchObject({ requestType: 'Delete', physicalResourceId: created.physicalResourceId, status: 'SUCCESS' });
    expect(aws.handlerRequests('StartSnapshot')).toHaveLength(2);
    expect(aws.world.images.get(updated.data!.ImageId)!.state).toBe('available');
    expect(aws.world.images.get(created.data!.ImageId)?.state ?? 'deregistered').toBe('deregistered');
    expect(result.leaks).toEqual([]);
  });

  test('changed tags only re-tag the AMI and snapshot under the same physical id', async () => {
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'tag-update' });
    const [created, updated] = result.outcomes;
    expect(updated).toMatchObject({ status: 'SUCCESS', physicalResourceId: created.physicalResourceId, data: created.data });
    expect(aws.handlerRequests('StartSnapshot')).toHaveLength(1);
    expect(aws.tagsOf(created.data!.ImageId)).toMatchObject({ owner: 'team-b', [BUILD_ID_TAG]: created.physicalResourceId });
    expect(aws.tagsOf(created.data!.SnapshotId)).toMatchObject({ owner: 'team-b' });
  });
});

describe('Delete', () => {
  test('destroy deregisters the AMI and deletes the snapshot, touching no instance, volume or staged object', async () => {
    // (the allowed-calls check after each test rules out instances, volumes, S3 writes and SSM)
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'delete' });
    expect(result.outcomes[1].status).toBe('SUCCESS');
    expect(aws.handlerRequests('DeregisterImage')).toHaveLength(1);
    expect(aws.world.snapshots.size).toBe(0);
    expect(result.leaks).toEqual([]);
  });

  test('retain keeps the AMI and snapshot', async () => {
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'retain' });
    expect(result.outcomes[1].status).toBe('SUCCESS');
    expect(aws.handlerRequests('DeregisterImage')).toEqual([]);
    expect(aws.handlerRequests('DeleteSnapshot')).toEqual([]);
    expect(aws.world.images.get(result.outcomes[0].data!.ImageId)!.state).toBe('available');
    expect(aws.world.snapshots.size).toBe(1);
  });

  test('an isComplete with no BuildState says it must run behind the same provider', async () => {
    const event = isCompleteEvent(createEvent(ebsDirectProperties()), { PhysicalResourceId: 'mua-0123456789abcdef' } as never);
    await expect(aws.drive(isComplete(event))).rejects.toThrow(/isComplete got no BuildState from onEvent/);
  });
});
