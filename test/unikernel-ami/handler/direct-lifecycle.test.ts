/**
 * The whole life of an ebs-direct build through the handler's onEvent and isComplete, as the CDK
 * provider framework drives it. AWS is replaced by aws-sdk-client-mock; EC2's snapshots and images
 * are kept by a small in-test FAKE (below) so that Describe calls see what earlier calls made.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CompleteSnapshotCommand,
  EBSClient,
  PutSnapshotBlockCommand,
  PutSnapshotBlockCommandInput,
  StartSnapshotCommand,
  ValidationException,
} from '@aws-sdk/client-ebs';
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  Filter,
  Image,
  RegisterImageCommand,
  Snapshot,
  Tag,
} from '@aws-sdk/client-ec2';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { AwsStub, mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { IsCompleteResponse, OnEventRequest, OnEventResponse } from '../../../lib/unikernel-ami/handler/events';
import { isComplete, onEvent } from '../../../lib/unikernel-ami/handler/index';
import { BUILD_ID_TAG, MANAGED_TAG, STACK_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import {
  createEvent,
  deleteEvent,
  ebsDirectProperties,
  isCompleteEvent,
  KERNEL_BUCKET,
  KERNEL_KEY,
  KERNEL_VERSION,
  RESPONSE_URL,
  STACK_NAME,
  updateEvent,
  X86_64_AKI,
} from '../../fixtures/custom-resource';

const BLOCK = 512 * 1024;
const KERNEL = fs.readFileSync(path.join(__dirname, '..', '..', 'fixtures', 'kernels', 'pv-x86_64.elf'));

const ebsMock = mockClient(EBSClient);
const ec2Mock = mockClient(EC2Client);
const s3Mock = mockClient(S3Client);
const ssmMock = mockClient(SSMClient);

/**
 * The calls the ebs-direct strategy's IAM role allows (see the design's IAM section): anything else
 * would be refused in AWS, so the handler must not make it.
 */
const ALLOWED_CALLS: [AwsStub<any, any, any>, string[]][] = [
  [ebsMock, ['StartSnapshotCommand', 'PutSnapshotBlockCommand', 'CompleteSnapshotCommand']],
  [ec2Mock, ['DescribeSnapshotsCommand', 'DescribeImagesCommand', 'RegisterImageCommand', 'CreateTagsCommand', 'DeleteTagsCommand', 'DeregisterImageCommand', 'DeleteSnapshotCommand']],
  [s3Mock, ['GetObjectCommand']],
  [ssmMock, []],
];

/** FAKE EC2 state: the snapshots and images the mocked calls created, so that later Describe calls find them. */
class FakeEc2 {
  snapshots: Snapshot[] = [];
  images: Image[] = [];
  private nextId = 1;
  /** StartSnapshot is idempotent by client token: a repeated token gets the same snapshot. */
  private readonly byClientToken = new Map<string, Snapshot>();

  install(): void {
    ebsMock.on(StartSnapshotCommand).callsFake((input) => {
      const existing = this.byClientToken.get(input.ClientToken!);
      if (existing) {
        return { SnapshotId: existing.SnapshotId, Status: existing.State };
      }
      const snapshot: Snapshot = { SnapshotId: `snap-${this.id()}`, State: 'pending', Tags: input.Tags };
      this.snapshots.push(snapshot);
      this.byClientToken.set(input.ClientToken!, snapshot);
      return { SnapshotId: snapshot.SnapshotId, Status: 'pending', BlockSize: BLOCK };
    });
    ebsMock.on(PutSnapshotBlockCommand).resolves({});
    ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'pending' });
    ec2Mock.on(DescribeSnapshotsCommand).callsFake((input) => ({
      Snapshots: this.snapshots.filter((s) => (input.SnapshotIds ?? [s.SnapshotId]).includes(s.SnapshotId) && matches(s.Tags, input.Filters)),
    }));
    ec2Mock.on(DescribeImagesCommand).callsFake((input) => ({
      Images: this.images.filter((i) => matches(i.Tags, input.Filters, i.Name)),
    }));
    ec2Mock.on(RegisterImageCommand).callsFake((input) => {
      const image: Image = {
        ImageId: `ami-${this.id()}`,
        State: 'pending',
        Name: input.Name,
        KernelId: input.KernelId,
        RootDeviceName: input.RootDeviceName,
        BlockDeviceMappings: input.BlockDeviceMappings,
        Tags: input.TagSpecifications?.[0]?.Tags,
      };
      this.images.push(image);
      return { ImageId: image.ImageId };
    });
    ec2Mock.on(DeregisterImageCommand).callsFake((input) => {
      this.images = this.images.filter((i) => i.ImageId !== input.ImageId);
      return {};
    });
    ec2Mock.on(DeleteSnapshotCommand).callsFake((input) => {
      this.snapshots = this.snapshots.filter((s) => s.SnapshotId !== input.SnapshotId);
      return {};
    });
    ec2Mock.on(CreateTagsCommand).resolves({});
    ec2Mock.on(DeleteTagsCommand).resolves({});
    s3Mock.on(GetObjectCommand).resolves({ Body: { transformToByteArray: async () => new Uint8Array(KERNEL) } as never });
  }

  completeSnapshots(): void {
    this.snapshots.forEach((s) => { s.State = 'completed'; });
  }

  makeImagesAvailable(): void {
    this.images.forEach((i) => { i.State = 'available'; });
  }

  private id(): string {
    return (this.nextId++).toString(16).padStart(17, '0');
  }
}

/** The subset of EC2 filtering the handler uses: tag:<key> and name. */
function matches(tags: Tag[] | undefined, filters: Filter[] | undefined, name?: string): boolean {
  return (filters ?? []).every((filter) => {
    if (filter.Name === 'name') {
      return filter.Values!.includes(name!);
    }
    const key = filter.Name!.replace(/^tag:/, '');
    return (tags ?? []).some((tag) => tag.Key === key && filter.Values!.includes(tag.Value!));
  });
}

let ec2: FakeEc2;
let logged: string[];

beforeEach(() => {
  ebsMock.reset();
  ec2Mock.reset();
  s3Mock.reset();
  ssmMock.reset();
  ec2 = new FakeEc2();
  ec2.install();
  logged = [];
  jest.spyOn(console, 'log').mockImplementation((line: string) => { logged.push(String(line)); });
});

afterEach(() => {
  jest.restoreAllMocks();
});

afterEach(() => {
  // Whatever happened in the test, only calls the ebs-direct role allows were made, and the presigned URL was never logged.
  for (const [mock, allowed] of ALLOWED_CALLS) {
    const made = mock.calls().map((call) => (call.args[0] as object).constructor.name);
    expect(made.filter((name) => !allowed.includes(name))).toEqual([]);
  }
  expect(logged.join('\n')).not.toContain(RESPONSE_URL);
});

/** onEvent, then isComplete polls with the fake snapshot and image progressing between them, as AWS would. */
async function build(event: OnEventRequest): Promise<{ response: OnEventResponse; done: IsCompleteResponse }> {
  const response = await onEvent(event);
  const poll = () => isComplete(isCompleteEvent(event, response));
  expect(await poll()).toEqual({ IsComplete: false });
  ec2.completeSnapshots();
  expect(await poll()).toEqual({ IsComplete: false });
  ec2.makeImagesAvailable();
  return { response, done: await poll() };
}

describe('Create', () => {
  test('uploads the disk, waits for the snapshot, registers a paravirtual AMI with the PV-GRUB kernel', async () => {
    // GIVEN / WHEN
    const { response, done } = await build(createEvent(ebsDirectProperties()));

    // THEN the kernel object version was read, and one snapshot was written and completed
    const buildId = response.PhysicalResourceId;
    expect(buildId).toMatch(/^mua-[0-9a-f]{16}$/);
    expect(s3Mock).toHaveReceivedCommandWith(GetObjectCommand, { Bucket: KERNEL_BUCKET, Key: KERNEL_KEY, VersionId: KERNEL_VERSION });
    expect(ebsMock).toHaveReceivedCommandTimes(StartSnapshotCommand, 1);
    expect(ebsMock).toHaveReceivedCommandWith(StartSnapshotCommand, {
      VolumeSize: 1,
      Tags: expect.arrayContaining([
        { Key: BUILD_ID_TAG, Value: buildId },
        { Key: MANAGED_TAG, Value: 'true' },
        { Key: STACK_TAG, Value: STACK_NAME },
        { Key: 'Name', Value: 'hello' },
        { Key: 'project', Value: 'hello-unikernel' },
      ]),
    });
    const [snapshot] = ec2.snapshots;
    expect(response.BuildState).toEqual({ Action: 'build', SnapshotId: snapshot.SnapshotId });
    expect(ebsMock).toHaveReceivedCommandWith(CompleteSnapshotCommand, {
      SnapshotId: snapshot.SnapshotId,
      ChangedBlocksCount: ebsMock.commandCalls(PutSnapshotBlockCommand).length,
    });

    // AND the AMI is paravirtual, boots through the PV-GRUB AKI from /dev/sda1 backed by that snapshot, and has no HVM-only flags
    expect(ec2Mock).toHaveReceivedCommandTimes(RegisterImageCommand, 1);
    const register = ec2Mock.commandCalls(RegisterImageCommand)[0].args[0].input;
    expect(register).toMatchObject({
      Name: `hello-${buildId}`,
      VirtualizationType: 'paravirtual',
      Architecture: 'x86_64',
      KernelId: X86_64_AKI,
      RootDeviceName: '/dev/sda1',
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: expect.objectContaining({ SnapshotId: snapshot.SnapshotId, DeleteOnTermination: true, VolumeSize: 1 }) }],
    });
    expect(register.EnaSupport).toBeUndefined();
    expect(register.SriovNetSupport).toBeUndefined();
    expect(done).toEqual({ IsComplete: true, Data: { ImageId: ec2.images[0].ImageId, SnapshotId: snapshot.SnapshotId, KernelId: X86_64_AKI } });
  });

  test('the blocks sent hold a filesystem from which debugfs reads the kernel fetched from S3', async () => {
    // GIVEN / WHEN
    await onEvent(createEvent(ebsDirectProperties()));

    // THEN
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'direct-lifecycle-'));
    try {
      const volume = path.join(dir, 'volume.img');
      const fd = fs.openSync(volume, 'w');
      fs.ftruncateSync(fd, 2 ** 30);
      for (const call of ebsMock.commandCalls(PutSnapshotBlockCommand)) {
        const { BlockIndex, BlockData } = call.args[0].input as PutSnapshotBlockCommandInput;
        fs.writeSync(fd, BlockData as Uint8Array, 0, BLOCK, BlockIndex! * BLOCK);
      }
      fs.closeSync(fd);
      execFileSync('e2fsck', ['-fn', volume], { stdio: 'pipe' });
      execFileSync('debugfs', ['-R', `dump /boot/hello.xen ${dir}/kernel`, volume], { stdio: 'pipe' });
      expect(fs.readFileSync(`${dir}/kernel`).equals(KERNEL)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a retried Create reuses its snapshot instead of making a second one', async () => {
    // GIVEN a Create whose snapshot AWS has completed
    const event = createEvent(ebsDirectProperties());
    const first = await onEvent(event);
    ec2.completeSnapshots();
    ebsMock.resetHistory();

    // WHEN the same request arrives again
    const second = await onEvent(event);

    // THEN
    expect(second).toEqual(first);
    expect(ec2.snapshots).toHaveLength(1);
    expect(ebsMock).toHaveReceivedCommandTimes(StartSnapshotCommand, 1);
    expect(ebsMock).not.toHaveReceivedCommand(PutSnapshotBlockCommand);
  });

  test('a block that cannot be written fails the Create, naming the block, and leaves no snapshot', async () => {
    // GIVEN
    ebsMock.on(PutSnapshotBlockCommand).rejects(
      new ValidationException({ message: 'Invalid block', $metadata: { httpStatusCode: 400 }, Reason: 'INVALID_BLOCK' }));

    // WHEN
    const create = onEvent(createEvent(ebsDirectProperties()));

    // THEN
    await expect(create).rejects.toThrow(/PutSnapshotBlock of block \d+ .*snap-.*Invalid block/);
    expect(ec2Mock).toHaveReceivedCommand(DeleteSnapshotCommand);
    expect(ec2.snapshots).toEqual([]);
    expect(ec2Mock).not.toHaveReceivedCommand(RegisterImageCommand);
  });

  test('a snapshot that ends in error fails isComplete and is removed', async () => {
    // GIVEN
    const event = createEvent(ebsDirectProperties());
    const response = await onEvent(event);
    ec2.snapshots[0].State = 'error';

    // WHEN
    const poll = isComplete(isCompleteEvent(event, response));

    // THEN
    await expect(poll).rejects.toThrow(/Snapshot snap-\w+ failed/);
    expect(ec2.snapshots).toEqual([]);
  });

  test('encryption with a KMS key reaches StartSnapshot', async () => {
    // GIVEN
    const kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

    // WHEN
    await onEvent(createEvent(ebsDirectProperties({ Encrypted: 'true', KmsKeyArn: kmsKeyArn })));

    // THEN
    expect(ebsMock).toHaveReceivedCommandWith(StartSnapshotCommand, { Encrypted: true, KmsKeyArn: kmsKeyArn });
  });
});

describe('Update', () => {
  async function created(properties: UnikernelAmiProperties = ebsDirectProperties()) {
    const { response, done } = await build(createEvent(properties));
    ebsMock.resetHistory();
    ec2Mock.resetHistory();
    return { buildId: response.PhysicalResourceId, attributes: done.Data! };
  }

  test('a changed kernel command line is a new build with a new physical id and its own snapshot', async () => {
    // GIVEN
    const before = ebsDirectProperties();
    const { buildId } = await created(before);

    // WHEN
    const { response, done } = await build(updateEvent(buildId, ebsDirectProperties({ KernelArgs: 'console=hvc0' }), before));

    // THEN
    expect(response.PhysicalResourceId).not.toBe(buildId);
    expect(ebsMock).toHaveReceivedCommandTimes(StartSnapshotCommand, 1);
    expect(ec2.images).toHaveLength(2);
    expect(done.Data!.ImageId).toBe(ec2.images[1].ImageId);
  });

  test('changed tags only re-tag the AMI and snapshot under the same physical id', async () => {
    // GIVEN
    const before = ebsDirectProperties({ Tags: { project: 'hello-unikernel', owner: 'team-a' } });
    const { buildId, attributes } = await created(before);

    // WHEN
    const event = updateEvent(buildId, ebsDirectProperties({ Tags: { project: 'hello-v2' } }), before);
    const response = await onEvent(event);
    const done = await isComplete(isCompleteEvent(event, response));

    // THEN
    expect(response.PhysicalResourceId).toBe(buildId);
    expect(ebsMock.calls()).toEqual([]);
    expect(ec2Mock).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [attributes.ImageId, attributes.SnapshotId],
      Tags: expect.arrayContaining([{ Key: 'project', Value: 'hello-v2' }, { Key: BUILD_ID_TAG, Value: buildId }]),
    });
    expect(ec2Mock).toHaveReceivedCommandWith(DeleteTagsCommand, { Resources: [attributes.ImageId, attributes.SnapshotId], Tags: [{ Key: 'owner' }] });
    expect(done).toEqual({ IsComplete: true, Data: attributes });
  });
});

describe('Delete', () => {
  test('destroy deregisters the AMI and deletes the snapshot, touching no instance, volume or staged object', async () => {
    // GIVEN
    const { response } = await build(createEvent(ebsDirectProperties()));
    const event = deleteEvent(response.PhysicalResourceId, ebsDirectProperties());

    // WHEN
    const deleting = await onEvent(event);
    const done = await isComplete(isCompleteEvent(event, deleting));

    // THEN (the allowed-calls check after each test rules out instances, volumes, S3 and SSM)
    expect(ec2Mock).toHaveReceivedCommand(DeregisterImageCommand);
    expect(ec2.images).toEqual([]);
    expect(ec2.snapshots).toEqual([]);
    expect(done).toEqual({ IsComplete: true });
  });

  test('retain keeps the AMI and snapshot', async () => {
    // GIVEN
    const { response } = await build(createEvent(ebsDirectProperties({ RemovalPolicy: 'retain' })));
    const event = deleteEvent(response.PhysicalResourceId, ebsDirectProperties({ RemovalPolicy: 'retain' }));

    // WHEN
    const done = await isComplete(isCompleteEvent(event, await onEvent(event)));

    // THEN
    expect(done).toEqual({ IsComplete: true });
    expect(ec2Mock).not.toHaveReceivedCommand(DeregisterImageCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteSnapshotCommand);
    expect(ec2.images).toHaveLength(1);
    expect(ec2.snapshots).toHaveLength(1);
  });

  test('the Delete of a failed Create (no build id) does nothing', async () => {
    // GIVEN the provider framework's marker for a Create that failed
    const event = deleteEvent('AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', ebsDirectProperties());

    // WHEN
    const done = await isComplete(isCompleteEvent(event, await onEvent(event)));

    // THEN
    expect(done).toEqual({ IsComplete: true });
    expect(ec2Mock.calls()).toEqual([]);
  });
});
