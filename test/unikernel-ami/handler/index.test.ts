/**
 * The custom-resource handler's lifecycle against mocked AWS APIs (aws-sdk-client-mock with the
 * in-memory fakes of fake-aws.ts; nothing here talks to AWS). Between isComplete calls the tests move
 * resources to their next state by hand, as AWS would over time.
 */
import { createHash } from 'crypto';
import { readFileSync } from 'fs';
import { join } from 'path';
import { gunzipSync } from 'zlib';
import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DeregisterImageCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import 'aws-sdk-client-mock-jest';
import { buildDiskImage, DiskLayout } from '../../../lib/disk-image';
import * as ebsDirect from '../../../lib/unikernel-ami/handler/ebs-direct';
import type { StreamedDiskImage } from '../../../lib/unikernel-ami/handler/kernel';
import { RUN_INSTANCES_RETRY } from '../../../lib/unikernel-ami/handler/helper-instance';
import { IsCompleteRequest, OnEventRequest, OnEventResponse } from '../../../lib/unikernel-ami/handler/events';
import { isComplete, onEvent } from '../../../lib/unikernel-ami/handler/index';
import { withRetry } from '../../../lib/unikernel-ami/handler/retry';
import { BUILD_ID_TAG, MANAGED_TAG, STACK_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import {
  createEvent,
  deleteEvent,
  ebsDirectProperties,
  helperInstanceProperties,
  I386_AKI,
  isCompleteEvent,
  KERNEL_BUCKET,
  KERNEL_KEY,
  KERNEL_VERSION,
  REGION,
  RESPONSE_URL,
  STACK_NAME,
  STAGING_BUCKET,
  updateEvent,
  X86_64_AKI,
} from '../../fixtures/custom-resource';
import { AVAILABILITY_ZONE, awsError, FakeAws } from './fake-aws';

const BLOCK = 524288;
const KERNELS = join(__dirname, '../../fixtures/kernels');
/** A Xen PV x86_64 kernel padded with pseudo-random bytes, so that the disk spans several 512 KiB blocks. */
const KERNEL = Buffer.concat([readFileSync(join(KERNELS, 'pv-x86_64.elf')), pseudoRandomBytes(1_300_000)]);

function pseudoRandomBytes(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = 0x2545f491;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

// Lambda sets AWS_REGION; the helper script passes it to the AWS CLI.
process.env.AWS_REGION = REGION;
const aws = new FakeAws();
let logLines: string[];

beforeEach(() => {
  aws.reset();
  aws.putKernel(KERNEL_BUCKET, KERNEL_KEY, KERNEL_VERSION, KERNEL);
  logLines = [];
  jest.spyOn(console, 'log').mockImplementation((line: string) => {
    logLines.push(line);
  });
});

afterEach(() => {
  jest.restoreAllMocks();
});

/** A build started by onEvent, and a way to call isComplete the way the provider framework does. */
interface Started {
  readonly request: OnEventRequest;
  readonly response: OnEventResponse;
  readonly buildId: string;
  poll(): ReturnType<typeof isComplete>;
}

async function start(request: OnEventRequest): Promise<Started> {
  const response = await onEvent(request);
  const event: IsCompleteRequest = isCompleteEvent(request, response);
  return { request, response, buildId: response.PhysicalResourceId, poll: () => isComplete(event) };
}

function only<T>(map: Map<string, T>): [string, T] {
  expect(map.size).toBe(1);
  return [...map][0];
}

/** The helper boots and its SSM agent registers; the new volume becomes available. */
function helperBoots(): void {
  for (const [id, instance] of aws.instances) {
    instance.state = 'running';
    aws.ssmOnline.add(id);
  }
  for (const volume of aws.volumes.values()) {
    if (volume.state === 'creating') volume.state = 'available';
  }
}

function volumeAttaches(): void {
  for (const volume of aws.volumes.values()) {
    if (volume.attachment === 'attaching') volume.attachment = 'attached';
  }
}

/** Terminated instances are gone, and the volumes they had attached are available again. */
function helperTerminates(): void {
  for (const [id, instance] of aws.instances) {
    if (instance.state === 'shutting-down') {
      instance.state = 'terminated';
      for (const volume of aws.volumes.values()) {
        if (volume.attachedTo === id) Object.assign(volume, { state: 'available', attachedTo: undefined, attachment: undefined });
      }
    }
  }
}

function scriptSucceeds(): void {
  for (const invocation of aws.invocations) invocation.status = 'Success';
}

function setAll<T extends { state: string }>(map: Map<string, T>, state: string): void {
  for (const resource of map.values()) resource.state = state;
}

/** Drives a helper-instance build from onEvent to the registered AMI. */
async function buildToCompletion(request: OnEventRequest) {
  const build = await start(request);
  helperBoots();
  expect((await build.poll()).IsComplete).toBe(false); // attaches
  volumeAttaches();
  expect((await build.poll()).IsComplete).toBe(false); // sends the script
  scriptSucceeds();
  expect((await build.poll()).IsComplete).toBe(false); // terminates
  helperTerminates();
  expect((await build.poll()).IsComplete).toBe(false); // snapshots
  setAll(aws.snapshots, 'completed');
  expect((await build.poll()).IsComplete).toBe(false); // registers
  setAll(aws.images, 'available');
  const done = await build.poll();
  expect(done.IsComplete).toBe(true);
  return { ...build, done };
}

function tagsAsRecord(tags: { Key?: string; Value?: string }[] | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).map((t) => [t.Key!, t.Value!]));
}

describe('Create, helper-instance strategy: onEvent', () => {
  test('reads the kernel version, stages exactly the non-zero blocks, launches the helper and creates the volume', async () => {
    // GIVEN a Create for a 64-bit kernel
    const request = createEvent(helperInstanceProperties({ KernelArgs: 'console=hvc0' }));
    // WHEN
    const response = await onEvent(request);
    // THEN the physical id is a build id, and the state names the instance and volume
    expect(response.PhysicalResourceId).toMatch(/^mua-[0-9a-f]{16}$/);
    const [instanceId] = only(aws.instances);
    const [volumeId] = only(aws.volumes);
    expect(response.BuildState).toEqual({ Action: 'build', InstanceId: instanceId, VolumeId: volumeId });
    expect(aws.s3).toHaveReceivedCommandWith(GetObjectCommand, { Bucket: KERNEL_BUCKET, Key: KERNEL_KEY, VersionId: KERNEL_VERSION });

    // THEN blocks.gz and manifest.txt hold, in index order, the blocks an independent build of the image has
    const prefix = `${STAGING_BUCKET}/builds/${response.PhysicalResourceId}/`;
    expect(aws.s3).toHaveReceivedCommandTimes(PutObjectCommand, 2);
    const blocks = gunzipSync(aws.objects.get(`${prefix}blocks.gz`)!);
    const manifest = Buffer.from(aws.objects.get(`${prefix}manifest.txt`)!).toString('utf8').trimEnd().split('\n');
    const expected = [...buildDiskImage({ kernel: KERNEL, name: 'hello', kernelArgs: 'console=hvc0', layout: DiskLayout.WHOLE_VOLUME, volumeSizeGiB: 1 }).nonZeroBlocks(BLOCK)];
    expect(expected.length).toBeGreaterThanOrEqual(3);
    expect(blocks.length).toBe(expected.length * BLOCK);
    expected.forEach((block, n) => {
      expect(blocks.subarray(n * BLOCK, (n + 1) * BLOCK).equals(Buffer.from(block.data))).toBe(true);
      expect(manifest[n + 1]).toBe(`${block.index} ${createHash('sha256').update(block.data).digest('hex')}`);
    });
    expect(manifest[0]).toBe(`mirage-unikernel-ami-manifest volume-bytes=${2 ** 30} block-bytes=${BLOCK} blocks=${expected.length}`);
    expect(manifest).toHaveLength(expected.length + 1);
  });

  test('RunInstances: IMDSv2 required, no key pair, shutdown terminates, tagged, build id as client token', async () => {
    const response = await onEvent(createEvent());
    const props = helperInstanceProperties();
    const run = aws.ec2.commandCalls(RunInstancesCommand)[0].args[0].input;
    expect(run).toMatchObject({
      ClientToken: response.PhysicalResourceId,
      ImageId: props.Helper!.ImageId,
      InstanceType: props.Helper!.InstanceType,
      SubnetId: props.Helper!.SubnetId,
      SecurityGroupIds: [props.Helper!.SecurityGroupId],
      IamInstanceProfile: { Arn: props.Helper!.InstanceProfileArn },
      MetadataOptions: { HttpTokens: 'required' },
      InstanceInitiatedShutdownBehavior: 'terminate',
      MinCount: 1,
      MaxCount: 1,
    });
    expect(run.KeyName).toBeUndefined();
    expect(run.TagSpecifications!.map((s) => s.ResourceType)).toEqual(['instance', 'volume', 'network-interface']);
    for (const spec of run.TagSpecifications!) {
      expect(tagsAsRecord(spec.Tags)).toEqual({
        project: 'hello-unikernel',
        Name: 'hello',
        [BUILD_ID_TAG]: response.PhysicalResourceId,
        [STACK_TAG]: STACK_NAME,
        [MANAGED_TAG]: 'true',
      });
    }
  });

  test('CreateVolume: in the subnet\'s zone, the volume size, encrypted with the given key, tagged, with a client token', async () => {
    const kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const response = await onEvent(createEvent(helperInstanceProperties({ VolumeSizeGiB: '2', Encrypted: 'true', KmsKeyArn: kmsKeyArn })));
    const create = aws.ec2.commandCalls(CreateVolumeCommand)[0].args[0].input;
    expect(create).toMatchObject({ AvailabilityZone: AVAILABILITY_ZONE, Size: 2, Encrypted: true, KmsKeyId: kmsKeyArn });
    expect(create.ClientToken).toContain(response.PhysicalResourceId);
    expect(tagsAsRecord(create.TagSpecifications![0].Tags)[BUILD_ID_TAG]).toBe(response.PhysicalResourceId);
    expect(tagsAsRecord(create.TagSpecifications![0].Tags)[MANAGED_TAG]).toBe('true');
  });

  test('an unencrypted build leaves encryption to the account default', async () => {
    await onEvent(createEvent());
    const create = aws.ec2.commandCalls(CreateVolumeCommand)[0].args[0].input;
    expect(create.Encrypted).toBeUndefined();
    expect(create.KmsKeyId).toBeUndefined();
  });

  test('a retried request gets the same build id (and client token); a new request a new one', async () => {
    const first = await onEvent(createEvent(undefined, 'request-a'));
    const retried = await onEvent(createEvent(undefined, 'request-a'));
    const other = await onEvent(createEvent(undefined, 'request-b'));
    expect(retried.PhysicalResourceId).toBe(first.PhysicalResourceId);
    expect(other.PhysicalResourceId).not.toBe(first.PhysicalResourceId);
    // The fake RunInstances honours client tokens as EC2 does: two builds, two instances
    expect(aws.instances.size).toBe(2);
  });
});

describe('Create, helper-instance strategy: isComplete', () => {
  test('not complete while the helper is pending; nothing attached or sent', async () => {
    const build = await start(createEvent());
    expect(await build.poll()).toEqual({ IsComplete: false });
    expect(aws.ec2).not.toHaveReceivedCommand(AttachVolumeCommand);
    expect(aws.ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  test('not complete while the helper runs but SSM does not see it online', async () => {
    const build = await start(createEvent());
    helperBoots();
    aws.ssmOnline.clear();
    expect(await build.poll()).toEqual({ IsComplete: false });
    expect(aws.ec2).not.toHaveReceivedCommand(AttachVolumeCommand);
  });

  test('a helper that never comes online in SSM fails the build with what its subnet needs', async () => {
    const build = await start(createEvent());
    helperBoots();
    aws.ssmOnline.clear();
    const [, instance] = only(aws.instances);
    instance.launchTime = new Date(Date.now() - 20 * 60_000);
    await expect(build.poll()).rejects.toThrow(/has run for 20 minutes without its SSM agent coming online\. Its subnet needs a route to the SSM and S3 endpoints/);
  });

  test('attaches the volume as /dev/sdf once the helper is online, then sends the script once', async () => {
    // GIVEN
    const build = await start(createEvent());
    helperBoots();
    const { InstanceId, VolumeId } = build.response.BuildState;
    // WHEN
    await build.poll();
    // THEN
    expect(aws.ec2).toHaveReceivedCommandWith(AttachVolumeCommand, { InstanceId, VolumeId, Device: '/dev/sdf' });
    expect(aws.ssm).not.toHaveReceivedCommand(SendCommandCommand);

    // WHEN the attachment completes, then isComplete runs twice
    volumeAttaches();
    expect((await build.poll()).IsComplete).toBe(false);
    expect((await build.poll()).IsComplete).toBe(false);
    // THEN the script was sent once (the second round found it by its comment)
    expect(aws.ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(aws.ec2).toHaveReceivedCommandTimes(AttachVolumeCommand, 1);
    const send = aws.ssm.commandCalls(SendCommandCommand)[0].args[0].input;
    expect(send).toMatchObject({ DocumentName: 'AWS-RunShellScript', InstanceIds: [InstanceId], Comment: build.buildId });
    const commands = send.Parameters!.commands.join('\n');
    expect(commands).toContain(`VOLUME_ID='${VolumeId}'`);
    expect(commands).toContain(`REGION='${process.env.AWS_REGION}'`);
    expect(commands).toContain(`BLOCKS_SOURCE='s3://${STAGING_BUCKET}/builds/${build.buildId}/blocks.gz'`);
    expect(commands).toContain(`MANIFEST_SOURCE='s3://${STAGING_BUCKET}/builds/${build.buildId}/manifest.txt'`);
  });

  test('a failed script fails the build with its stderr, and the build\'s resources are removed', async () => {
    // GIVEN the script ran and failed
    const build = await start(createEvent());
    await scriptSent(build);
    Object.assign(aws.invocations[0], { status: 'Failed', stderr: 'mirage-unikernel-ami helper: /dev/nvme1n1 holds 2147483648 bytes but the image is for a 1073741824-byte volume' });
    // WHEN / THEN
    await expect(build.poll()).rejects.toThrow(
      /helper instance i-\S+ could not write the disk image \(SSM command cmd-\d+ Failed, exit code 1\): mirage-unikernel-ami helper: \/dev\/nvme1n1 holds 2147483648 bytes/,
    );
    expect(aws.ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [build.response.BuildState.InstanceId] });
    expect(aws.objects.has(`${STAGING_BUCKET}/builds/${build.buildId}/blocks.gz`)).toBe(false);
  });

  test('a helper that stopped before writing fails the build', async () => {
    const build = await start(createEvent());
    setAll(aws.instances, 'terminated');
    await expect(build.poll()).rejects.toThrow(/helper instance i-\S+ is terminated before writing the image/);
  });

  test('after the script succeeds: terminates the helper, waits for the volume to detach, then snapshots it once', async () => {
    const build = await start(createEvent());
    await scriptSent(build);
    scriptSucceeds();

    expect(await build.poll()).toEqual({ IsComplete: false });
    expect(aws.ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [build.response.BuildState.InstanceId] });
    expect(aws.ec2).not.toHaveReceivedCommand(CreateSnapshotCommand);

    helperTerminates();
    expect(await build.poll()).toEqual({ IsComplete: false });
    expect(await build.poll()).toEqual({ IsComplete: false });
    expect(aws.ec2).toHaveReceivedCommandTimes(CreateSnapshotCommand, 1);
    const snapshot = aws.ec2.commandCalls(CreateSnapshotCommand)[0].args[0].input;
    expect(snapshot.VolumeId).toBe(build.response.BuildState.VolumeId);
    expect(tagsAsRecord(snapshot.TagSpecifications![0].Tags)).toMatchObject({ [BUILD_ID_TAG]: build.buildId, [MANAGED_TAG]: 'true' });
    expect(aws.ec2).not.toHaveReceivedCommand(RegisterImageCommand);
  });

  test('a new snapshot that EC2 does not show yet (NotFound) is waited for, and the build goes on', async () => {
    // GIVEN EC2 answers NotFound to the first describe of a new snapshot
    aws.newSnapshotsLag = true;
    const build = await start(createEvent());
    await scriptSent(build);
    scriptSucceeds();
    await build.poll();
    helperTerminates();
    // WHEN the round that creates the snapshot, then the next one
    expect(await build.poll()).toEqual({ IsComplete: false });
    const describedById = () => aws.ec2.commandCalls(DescribeSnapshotsCommand).map((call) => call.args[0].input).filter((input) => input.SnapshotIds);
    expect(describedById()).toHaveLength(0);
    expect(await build.poll()).toEqual({ IsComplete: false });
    expect(describedById()).toHaveLength(1);
    // THEN the build is not abandoned: it registers the AMI from that one snapshot and completes
    setAll(aws.snapshots, 'completed');
    expect(await build.poll()).toEqual({ IsComplete: false });
    setAll(aws.images, 'available');
    const [snapshotId] = only(aws.snapshots);
    expect((await build.poll()).Data).toMatchObject({ SnapshotId: snapshotId });
    expect(aws.ec2).toHaveReceivedCommandTimes(CreateSnapshotCommand, 1);
  });

  test('a snapshot in error fails the build with its message', async () => {
    const build = await start(createEvent());
    const [snapshotId] = await snapshotTaken(build);
    Object.assign(aws.snapshots.get(snapshotId)!, { state: 'error', message: 'internal error' });
    await expect(build.poll()).rejects.toThrow(`Snapshot ${snapshotId} failed: internal error`);
  });

  test('registers a paravirtual AMI with PV-GRUB, then completes with its ids and cleans up', async () => {
    // GIVEN a completed snapshot
    const build = await start(createEvent(helperInstanceProperties({ VolumeSizeGiB: '3' })));
    const [snapshotId] = await snapshotTaken(build);
    setAll(aws.snapshots, 'completed');
    // WHEN
    expect(await build.poll()).toEqual({ IsComplete: false });
    // THEN exactly what PV-GRUB needs, and no HVM-only flags
    const register = aws.ec2.commandCalls(RegisterImageCommand)[0].args[0].input;
    expect(register).toMatchObject({
      Name: `hello-${build.buildId}`,
      VirtualizationType: 'paravirtual',
      Architecture: 'x86_64',
      KernelId: X86_64_AKI,
      RootDeviceName: '/dev/sda1',
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: snapshotId, DeleteOnTermination: true, VolumeSize: 3 } }],
    });
    expect(register).not.toHaveProperty('EnaSupport');
    expect(register).not.toHaveProperty('SriovNetSupport');
    expect(register.RamdiskId).toBeUndefined();
    expect(tagsAsRecord(register.TagSpecifications![0].Tags)).toMatchObject({ [BUILD_ID_TAG]: build.buildId, [MANAGED_TAG]: 'true', Name: 'hello' });

    // WHEN the AMI becomes available
    setAll(aws.images, 'available');
    const done = await build.poll();
    // THEN
    const [imageId] = only(aws.images);
    expect(done).toEqual({ IsComplete: true, Data: { ImageId: imageId, SnapshotId: snapshotId, KernelId: X86_64_AKI } });
    expect(aws.ec2).toHaveReceivedCommandTimes(RegisterImageCommand, 1);
    expect(aws.ec2).toHaveReceivedCommandWith(DeleteVolumeCommand, { VolumeId: build.response.BuildState.VolumeId });
    expect(aws.s3).toHaveReceivedCommandWith(DeleteObjectCommand, { Bucket: STAGING_BUCKET, Key: `builds/${build.buildId}/blocks.gz` });
    expect(aws.s3).toHaveReceivedCommandWith(DeleteObjectCommand, { Bucket: STAGING_BUCKET, Key: `builds/${build.buildId}/manifest.txt` });
    expect(aws.volumes.size).toBe(0);
  });

  test('a 32-bit build registers an i386 AMI with the i386 PV-GRUB', async () => {
    aws.putKernel(KERNEL_BUCKET, KERNEL_KEY, KERNEL_VERSION, readFileSync(join(KERNELS, 'pv-i386.elf')));
    const { done } = await buildToCompletion(createEvent(helperInstanceProperties({ Architecture: 'i386', KernelId: I386_AKI })));
    expect(done.Data!.KernelId).toBe(I386_AKI);
    expect(aws.ec2).toHaveReceivedCommandWith(RegisterImageCommand, { Architecture: 'i386', KernelId: I386_AKI });
  });

  test('an AMI registered by an earlier round that the tag filter misses yet is found by name, not registered twice', async () => {
    const build = await start(createEvent());
    await snapshotTaken(build);
    setAll(aws.snapshots, 'completed');
    await build.poll();
    // GIVEN the registered AMI is not yet visible by its tag (eventual consistency)
    const [, image] = only(aws.images);
    const tags = image.tags;
    image.tags = [];
    image.state = 'available';
    // WHEN
    const done = await build.poll();
    image.tags = tags;
    // THEN
    expect(done.IsComplete).toBe(true);
    expect(aws.images.size).toBe(1);
  });

  test('every step logs one JSON line with the build id, and the ResponseURL never appears', async () => {
    await buildToCompletion(createEvent());
    expect(logLines.length).toBeGreaterThan(8);
    const entries = logLines.map((line) => JSON.parse(line));
    for (const entry of entries) {
      expect(entry).toEqual(expect.objectContaining({ step: expect.any(String), buildId: expect.stringMatching(/^mua-/), elapsedMs: expect.any(Number) }));
    }
    expect(entries.map((e) => e.step)).toEqual(expect.arrayContaining(['stage-image', 'run-instances', 'create-volume', 'send-helper-script', 'create-snapshot', 'register-image', 'complete']));
    expect(logLines.join('\n')).not.toContain(RESPONSE_URL.split('?')[0]);
  });
});

/** Drives a build until the helper script has been sent. */
async function scriptSent(build: Started): Promise<void> {
  helperBoots();
  await build.poll();
  volumeAttaches();
  await build.poll();
  expect(aws.invocations).toHaveLength(1);
}

/** Drives a build until its snapshot is taken; returns the snapshot ids. */
async function snapshotTaken(build: Started): Promise<string[]> {
  await scriptSent(build);
  scriptSucceeds();
  await build.poll();
  helperTerminates();
  await build.poll();
  return [...aws.snapshots.keys()];
}

describe('Create: failures', () => {
  test.each([
    ['pvh-only.elf', /Xen PVH-only kernel/],
    ['junk.bin', /neither an ELF file, a gzip-compressed one nor a Linux bzImage/],
    ['pv-i386.elf', /is ELF32 .*\(i386\), but the AMI is to be x86_64 with the x86_64 PV-GRUB aki-5c21674b, which cannot start it\. Set the architecture to i386/],
  ])('the kernel %s is refused before anything is created', async (file, message) => {
    aws.putKernel(KERNEL_BUCKET, KERNEL_KEY, KERNEL_VERSION, readFileSync(join(KERNELS, file)));
    await expect(onEvent(createEvent())).rejects.toThrow(message);
    expect(aws.s3).not.toHaveReceivedCommand(PutObjectCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(RunInstancesCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(CreateVolumeCommand);
  });

  test('a missing kernel object fails with the object named', async () => {
    await expect(onEvent(createEvent(helperInstanceProperties({ KernelObjectVersion: 'other-version' })))).rejects.toThrow(
      `s3:GetObject s3://${KERNEL_BUCKET}/${KERNEL_KEY} (version other-version) failed: The specified key does not exist.`,
    );
    expect(aws.ec2).not.toHaveReceivedCommand(RunInstancesCommand);
  });

  test('invalid properties are refused with the property, its value and what was expected', async () => {
    await expect(onEvent(createEvent(helperInstanceProperties({ Layout: 'gpt' })))).rejects.toThrow(
      'Invalid resource property Layout "gpt": expected one of whole, mbr.',
    );
    await expect(onEvent(createEvent(helperInstanceProperties({ VolumeSizeGiB: '1.5' })))).rejects.toThrow(/VolumeSizeGiB "1.5"/);
    expect(aws.s3).not.toHaveReceivedCommand(GetObjectCommand);
  });

  test('RunInstances failing fails onEvent with the call named, and the staged objects are removed', async () => {
    aws.ec2.on(RunInstancesCommand).rejects(awsError('InsufficientInstanceCapacity', 'We currently do not have sufficient t3.small capacity'));
    await expect(onEvent(createEvent())).rejects.toThrow(
      /^ec2:RunInstances \(t3\.small in subnet-0abc1234\) failed: We currently do not have sufficient t3\.small capacity$/,
    );
    expect(aws.ec2).not.toHaveReceivedCommand(CreateVolumeCommand);
    expect(aws.s3).toHaveReceivedCommandTimes(DeleteObjectCommand, 2);
    expect(aws.objects.size).toBe(1); // only the kernel is left
  });

  test('CreateVolume failing terminates the helper that was already launched', async () => {
    aws.ec2.on(CreateVolumeCommand).rejects(awsError('VolumeLimitExceeded', 'You have exceeded your maximum gp3 storage limit'));
    await expect(onEvent(createEvent())).rejects.toThrow(/ec2:CreateVolume \(1 GiB in us-east-1b\) failed: You have exceeded/);
    const [instanceId] = only(aws.instances);
    expect(aws.ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [instanceId] });
  });

  test('staging failing fails onEvent with the call named, before any instance is launched', async () => {
    aws.s3.on(PutObjectCommand).rejects(awsError('AccessDenied', 'Access Denied', 403));
    await expect(onEvent(createEvent())).rejects.toThrow('s3:PutObject blocks.gz failed: Access Denied');
    expect(aws.ec2).not.toHaveReceivedCommand(RunInstancesCommand);
  });

  test.each([
    ['ec2:AttachVolume', () => aws.ec2.on(AttachVolumeCommand).rejects(awsError('UnauthorizedOperation', 'not authorized to attach', 403))],
    ['ssm:SendCommand', () => aws.ssm.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'Instances not in a valid state'))],
    ['ec2:CreateSnapshot', () => aws.ec2.on(CreateSnapshotCommand).rejects(awsError('SnapshotLimitExceeded', 'snapshot limit'))],
    ['ec2:RegisterImage', () => aws.ec2.on(RegisterImageCommand).rejects(awsError('InvalidParameterValue', 'bad kernel'))],
  ])('%s failing in isComplete fails the build with the call named, and removes the helper', async (call, fail) => {
    // GIVEN
    fail();
    const build = await start(createEvent());
    // WHEN the build runs until the failing call
    const rounds = async () => {
      helperBoots();
      await build.poll();
      volumeAttaches();
      await build.poll();
      scriptSucceeds();
      await build.poll();
      helperTerminates();
      await build.poll();
      setAll(aws.snapshots, 'completed');
      await build.poll();
    };
    // THEN
    await expect(rounds()).rejects.toThrow(new RegExp(`^${call} failed: `));
    expect(aws.ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [build.response.BuildState.InstanceId] });
    expect([...aws.objects.keys()].filter((key) => key.startsWith(STAGING_BUCKET))).toEqual([]);
  });

  test('RunInstances refusing the brand-new instance profile (IAM propagation) is retried until EC2 sees it', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0); // no jitter wait in tests
    const notYetVisible = awsError('InvalidParameterValue', 'Value (arn:aws:iam::123456789012:instance-profile/helper) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN');
    aws.ec2.on(RunInstancesCommand).rejectsOnce(notYetVisible).rejectsOnce(notYetVisible).resolves({ Instances: [{ InstanceId: 'i-0launched' }] });
    const response = await onEvent(createEvent());
    expect(response.BuildState.InstanceId).toBe('i-0launched');
    expect(aws.ec2).toHaveReceivedCommandTimes(RunInstancesCommand, 3);
  });

  test('the wait for the instance profile lasts about two minutes on average, then the error goes through', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5); // the mean of the jitter
    const waits: number[] = [];
    const notYetVisible = awsError('InvalidParameterValue', 'Invalid IAM Instance Profile name');
    const launch = withRetry('ec2:RunInstances', () => Promise.reject(notYetVisible), {
      ...RUN_INSTANCES_RETRY,
      sleep: async (ms) => { waits.push(ms); },
    });
    await expect(launch).rejects.toThrow(/after \d+ attempts: Invalid IAM Instance Profile name/);
    const totalSeconds = waits.reduce((a, b) => a + b, 0) / 1000;
    expect(totalSeconds).toBeGreaterThanOrEqual(90);
    expect(totalSeconds).toBeLessThanOrEqual(180);
  });

  test('any other InvalidParameterValue from RunInstances fails at once', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0);
    aws.ec2.on(RunInstancesCommand).rejects(awsError('InvalidParameterValue', 'Value (t3.small) for parameter instanceType is invalid.'));
    await expect(onEvent(createEvent())).rejects.toThrow(/^ec2:RunInstances \(t3\.small in subnet-0abc1234\) failed: Value \(t3\.small\)/);
    expect(aws.ec2).toHaveReceivedCommandTimes(RunInstancesCommand, 1);
  });

  test('throttled RunInstances is retried with the same client token and then succeeds', async () => {
    const throttled = awsError('RequestLimitExceeded', 'Request limit exceeded.', 503);
    aws.ec2.on(RunInstancesCommand).rejectsOnce(throttled).rejectsOnce(throttled).resolves({ Instances: [{ InstanceId: 'i-0retried' }] });
    const response = await onEvent(createEvent());
    expect(response.BuildState.InstanceId).toBe('i-0retried');
    const tokens = aws.ec2.commandCalls(RunInstancesCommand).map((call) => call.args[0].input.ClientToken);
    expect(tokens).toEqual([response.PhysicalResourceId, response.PhysicalResourceId, response.PhysicalResourceId]);
  });
});

describe('Create, ebs-direct strategy', () => {
  test('uploads the image with the EBS direct APIs, then registers the AMI from that snapshot', async () => {
    // GIVEN the direct uploader (tested on its own) returns a snapshot, which the fake EC2 knows
    const upload = jest.spyOn(ebsDirect, 'uploadSnapshotDirect').mockImplementation(async (_ebs, _ec2, options) => {
      aws.snapshots.set('snap-0direct', { state: 'pending', tags: options.tags });
      return { snapshotId: 'snap-0direct', blocksSent: 5, bytesSent: 5 * BLOCK, apiCalls: 7 };
    });
    // WHEN
    const build = await start(createEvent(ebsDirectProperties({ Encrypted: 'true' })));
    // THEN no helper, no staging
    expect(build.response.BuildState).toEqual({ Action: 'build', SnapshotId: 'snap-0direct' });
    expect(aws.ec2).not.toHaveReceivedCommand(RunInstancesCommand);
    expect(aws.s3).not.toHaveReceivedCommand(PutObjectCommand);
    const options = upload.mock.calls[0][2];
    expect(options).toMatchObject({ buildId: build.buildId, volumeSizeGiB: 1, encrypted: true });
    expect((options.image as StreamedDiskImage).menuLst).toContain('kernel /boot/hello.xen');
    expect(tagsAsRecord(options.tags)).toMatchObject({ [BUILD_ID_TAG]: build.buildId, [MANAGED_TAG]: 'true', project: 'hello-unikernel' });

    expect(await build.poll()).toEqual({ IsComplete: false });
    setAll(aws.snapshots, 'completed');
    await build.poll();
    setAll(aws.images, 'available');
    const done = await build.poll();
    expect(done).toEqual({ IsComplete: true, Data: { ImageId: only(aws.images)[0], SnapshotId: 'snap-0direct', KernelId: X86_64_AKI } });
    expect(aws.ec2).toHaveReceivedCommandWith(RegisterImageCommand, { VirtualizationType: 'paravirtual' });
    expect(aws.ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(DescribeInstancesCommand);
  });

  test('a failed upload fails onEvent and removes the build\'s snapshot without touching instances or volumes', async () => {
    jest.spyOn(ebsDirect, 'uploadSnapshotDirect').mockImplementation(async (_ebs, _ec2, options) => {
      aws.snapshots.set('snap-0broken', { state: 'pending', tags: options.tags });
      throw new Error('ebs:PutSnapshotBlock failed: ValidationException');
    });
    await expect(onEvent(createEvent(ebsDirectProperties()))).rejects.toThrow('ebs:PutSnapshotBlock failed: ValidationException');
    expect(aws.snapshots.size).toBe(0);
    expect(aws.ec2).not.toHaveReceivedCommand(DescribeInstancesCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(DescribeVolumesCommand);
  });
});

describe('Update', () => {
  async function existingBuild(props: UnikernelAmiProperties = helperInstanceProperties()) {
    const built = await buildToCompletion(createEvent(props));
    aws.ec2.resetHistory();
    aws.s3.resetHistory();
    aws.ssm.resetHistory();
    return built;
  }

  test.each<[string, Partial<UnikernelAmiProperties>]>([
    ['a new kernel version', { KernelObjectVersion: 'v4' }],
    ['other kernel arguments', { KernelArgs: '--ipv4=10.0.0.9/24' }],
    ['another layout', { Layout: 'mbr' }],
    ['a bigger volume', { VolumeSizeGiB: '2' }],
    ['encryption', { Encrypted: 'true' }],
  ])('%s: a new build under a new physical id', async (_what, change) => {
    // GIVEN a finished build
    const old = await existingBuild();
    aws.putKernel(KERNEL_BUCKET, KERNEL_KEY, change.KernelObjectVersion ?? KERNEL_VERSION, KERNEL);
    // WHEN
    const response = await onEvent(updateEvent(old.buildId, helperInstanceProperties(change), helperInstanceProperties(), 'update-1'));
    // THEN
    expect(response.PhysicalResourceId).toMatch(/^mua-[0-9a-f]{16}$/);
    expect(response.PhysicalResourceId).not.toBe(old.buildId);
    expect(response.BuildState.Action).toBe('build');
    expect(aws.ec2).toHaveReceivedCommandTimes(RunInstancesCommand, 1);
    expect(aws.s3).toHaveReceivedCommandTimes(PutObjectCommand, 2);
    // the old AMI is left for CloudFormation's Delete of the old physical id
    expect(aws.ec2).not.toHaveReceivedCommand(DeregisterImageCommand);
  });

  test('tags only: same physical id, tags updated on the AMI and snapshot, nothing rebuilt', async () => {
    // GIVEN a finished build tagged project=hello-unikernel, team=a
    const oldProps = helperInstanceProperties({ Tags: { project: 'hello-unikernel', team: 'a' } });
    const old = await existingBuild(oldProps);
    const { ImageId, SnapshotId } = old.done.Data!;
    // WHEN the tags become project=hello-unikernel, owner=ops (team removed) and the removal policy changes
    const newProps = helperInstanceProperties({ Tags: { project: 'hello-unikernel', owner: 'ops' }, RemovalPolicy: 'retain' });
    const request = updateEvent(old.buildId, newProps, oldProps);
    const response = await onEvent(request);
    // THEN
    expect(response.PhysicalResourceId).toBe(old.buildId);
    expect(response.Data).toEqual({ ImageId, SnapshotId, KernelId: X86_64_AKI });
    expect(aws.ec2).toHaveReceivedCommandWith(CreateTagsCommand, { Resources: [ImageId, SnapshotId] });
    expect(aws.ec2).toHaveReceivedCommandWith(DeleteTagsCommand, { Resources: [ImageId, SnapshotId], Tags: [{ Key: 'team' }] });
    for (const id of [ImageId, SnapshotId]) {
      expect(aws.tagsOf(id)).toEqual({ project: 'hello-unikernel', owner: 'ops', Name: 'hello', [BUILD_ID_TAG]: old.buildId, [STACK_TAG]: STACK_NAME, [MANAGED_TAG]: 'true' });
    }
    expect(aws.s3).not.toHaveReceivedCommand(GetObjectCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(RunInstancesCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(RegisterImageCommand);
    // isComplete completes at once with the same attributes
    expect(await isComplete(isCompleteEvent(request, response))).toEqual({ IsComplete: true, Data: { ImageId, SnapshotId, KernelId: X86_64_AKI } });
  });

  test('a user tag cannot overwrite the build\'s own tags', async () => {
    const old = await existingBuild();
    const newProps = helperInstanceProperties({ Tags: { [BUILD_ID_TAG]: 'mua-ffffffffffffffff', [MANAGED_TAG]: 'false', Name: 'other' } });
    await onEvent(updateEvent(old.buildId, newProps, helperInstanceProperties()));
    expect(aws.tagsOf(old.done.Data!.ImageId)).toMatchObject({ [BUILD_ID_TAG]: old.buildId, [MANAGED_TAG]: 'true', Name: 'hello' });
  });
});

describe('Delete', () => {
  test('destroy: deregisters the AMI and deletes its snapshot', async () => {
    const { buildId, done } = await buildToCompletion(createEvent());
    const request = deleteEvent(buildId, helperInstanceProperties({ RemovalPolicy: 'destroy' }));
    const response = await onEvent(request);
    expect(response.PhysicalResourceId).toBe(buildId);
    expect(aws.ec2).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: done.Data!.ImageId });
    expect(aws.ec2).toHaveReceivedCommandWith(DeleteSnapshotCommand, { SnapshotId: done.Data!.SnapshotId });
    expect(aws.images.size + aws.snapshots.size).toBe(0);
    expect(await isComplete(isCompleteEvent(request, response))).toEqual({ IsComplete: true });
  });

  test('retain: keeps the AMI and its snapshot', async () => {
    const { buildId } = await buildToCompletion(createEvent());
    const request = deleteEvent(buildId, helperInstanceProperties({ RemovalPolicy: 'retain' }));
    const response = await onEvent(request);
    expect(await isComplete(isCompleteEvent(request, response))).toEqual({ IsComplete: true });
    expect(aws.ec2).not.toHaveReceivedCommand(DeregisterImageCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(DeleteSnapshotCommand);
    expect(aws.images.size).toBe(1);
    expect(aws.snapshots.size).toBe(1);
  });

  test('what is already gone (NotFound) counts as deleted', async () => {
    const { buildId } = await buildToCompletion(createEvent());
    aws.ec2.on(DeregisterImageCommand).rejects(awsError('InvalidAMIID.NotFound'));
    aws.ec2.on(DeleteSnapshotCommand).rejects(awsError('InvalidSnapshot.NotFound'));
    const request = deleteEvent(buildId);
    const response = await onEvent(request);
    expect(aws.ec2).toHaveReceivedCommand(DeregisterImageCommand);
    expect(response.PhysicalResourceId).toBe(buildId);
  });

  test('a snapshot still in use right after its AMI is deregistered is deleted on a later round', async () => {
    const { buildId } = await buildToCompletion(createEvent());
    aws.ec2.on(DeleteSnapshotCommand).rejectsOnce(awsError('InvalidSnapshot.InUse'));
    const request = deleteEvent(buildId);
    const response = await onEvent(request);
    expect(aws.snapshots.size).toBe(1);
    aws.ec2.on(DeleteSnapshotCommand).resolves({});
    expect(await isComplete(isCompleteEvent(request, response))).toEqual({ IsComplete: true });
    expect(aws.ec2).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 2);
  });

  test('after a failed Create: terminates the helper, deletes its volume once detached and the staged objects', async () => {
    // GIVEN a build that failed while the helper was writing (isComplete threw, so CloudFormation got the build id)
    const build = await start(createEvent());
    helperBoots();
    await build.poll();
    volumeAttaches();
    // WHEN CloudFormation deletes it (retain policy: a failed build has no AMI to retain)
    const request = deleteEvent(build.buildId, helperInstanceProperties({ RemovalPolicy: 'retain' }));
    const response = await onEvent(request);
    const poll = () => isComplete(isCompleteEvent(request, response));
    // THEN
    expect(aws.ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [build.response.BuildState.InstanceId] });
    expect(aws.s3).toHaveReceivedCommandWith(DeleteObjectCommand, { Bucket: STAGING_BUCKET, Key: `builds/${build.buildId}/blocks.gz` });
    expect([...aws.objects.keys()].filter((key) => key.startsWith(STAGING_BUCKET))).toEqual([]);
    expect(await poll()).toEqual({ IsComplete: false }); // instance shutting down, volume still attached
    helperTerminates();
    expect(await poll()).toEqual({ IsComplete: true }); // the detached volume is deleted
    expect(aws.ec2).toHaveReceivedCommandWith(DeleteVolumeCommand, { VolumeId: build.response.BuildState.VolumeId });
    expect(aws.volumes.size).toBe(0);
  });

  test('after a build failed with a snapshot but no AMI: the snapshot is deleted even under retain', async () => {
    const build = await start(createEvent());
    await snapshotTaken(build);
    const request = deleteEvent(build.buildId, helperInstanceProperties({ RemovalPolicy: 'retain' }));
    await onEvent(request);
    expect(aws.snapshots.size).toBe(0);
  });

  test('a finished helper build deleted after a switch to ebsDirect: AMI and snapshot removed, no helper cleanup calls', async () => {
    // GIVEN a finished helper build, and a role that lost the helper permissions and a staging bucket that is gone
    const { buildId } = await buildToCompletion(createEvent());
    aws.ec2.on(DescribeInstancesCommand).rejects(awsError('UnauthorizedOperation', 'not authorized to perform ec2:DescribeInstances', 403));
    aws.ec2.on(DescribeVolumesCommand).rejects(awsError('UnauthorizedOperation', 'not authorized to perform ec2:DescribeVolumes', 403));
    aws.s3.on(DeleteObjectCommand).rejects(awsError('NoSuchBucket', 'The specified bucket does not exist', 404));
    aws.ec2.on(DeleteSnapshotCommand).rejectsOnce(awsError('InvalidSnapshot.InUse')).resolves({});
    aws.ec2.resetHistory();
    aws.s3.resetHistory();
    // WHEN the old build (its properties still say helper-instance) is deleted, over two rounds
    const request = deleteEvent(buildId, helperInstanceProperties({ RemovalPolicy: 'destroy' }));
    const response = await onEvent(request);
    expect(await isComplete(isCompleteEvent(request, response))).toEqual({ IsComplete: true });
    // THEN
    expect(aws.images.size).toBe(0);
    expect(aws.ec2).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 2);
    expect(aws.ec2).not.toHaveReceivedCommand(DescribeInstancesCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(DescribeVolumesCommand);
    expect(aws.s3.calls()).toHaveLength(0);
  });

  test('an unfinished build: a staging bucket that is gone counts as its staged objects deleted', async () => {
    const build = await start(createEvent());
    aws.s3.on(DeleteObjectCommand).rejects(awsError('NoSuchBucket', 'The specified bucket does not exist', 404));
    const request = deleteEvent(build.buildId);
    await onEvent(request);
    expect(aws.s3).toHaveReceivedCommand(DeleteObjectCommand);
    expect(aws.ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [build.response.BuildState.InstanceId] });
  });

  test('an unfinished build whose helper cleanup fails still has its snapshot deleted first', async () => {
    const build = await start(createEvent());
    await snapshotTaken(build);
    aws.ec2.on(DescribeInstancesCommand).rejects(awsError('UnauthorizedOperation', 'not authorized to perform ec2:DescribeInstances', 403));
    await expect(onEvent(deleteEvent(build.buildId))).rejects.toThrow(/^ec2:DescribeInstances failed: not authorized/);
    expect(aws.snapshots.size).toBe(0);
  });

  test('resources of other builds are left alone', async () => {
    const other = await buildToCompletion(createEvent(undefined, 'other-request'));
    aws.ec2.resetHistory();
    const build = await start(createEvent());
    await onEvent(deleteEvent(build.buildId));
    expect(aws.images.size).toBe(1);
    expect(aws.ec2).not.toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: other.done.Data!.ImageId });
    expect(aws.ec2).not.toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [other.response.BuildState.InstanceId] });
  });

  test.each(['AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', 'some-other-id'])('a physical id that is no build (%s) is a no-op', async (physicalId) => {
    const request = deleteEvent(physicalId);
    const response = await onEvent(request);
    expect(response.PhysicalResourceId).toBe(physicalId);
    expect(await isComplete(isCompleteEvent(request, response))).toEqual({ IsComplete: true });
    expect(aws.ec2.calls()).toHaveLength(0);
    expect(aws.s3.calls()).toHaveLength(0);
  });

  test('ebs-direct: only AMI and snapshot calls (its role has no instance or volume permissions)', async () => {
    jest.spyOn(ebsDirect, 'uploadSnapshotDirect').mockImplementation(async (_ebs, _ec2, options) => {
      aws.snapshots.set('snap-0direct', { state: 'completed', tags: options.tags });
      return { snapshotId: 'snap-0direct', blocksSent: 1, bytesSent: BLOCK, apiCalls: 3 };
    });
    const build = await start(createEvent(ebsDirectProperties()));
    await build.poll();
    setAll(aws.images, 'available');
    await build.poll();
    aws.ec2.resetHistory();
    aws.s3.resetHistory();
    const request = deleteEvent(build.buildId, ebsDirectProperties());
    await onEvent(request);
    expect(aws.images.size + aws.snapshots.size).toBe(0);
    expect(aws.ec2).not.toHaveReceivedCommand(DescribeInstancesCommand);
    expect(aws.ec2).not.toHaveReceivedCommand(DescribeVolumesCommand);
    expect(aws.s3.calls()).toHaveLength(0);
  });
});
