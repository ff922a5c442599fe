import { progressKey } from '../../../lib/unikernel-ami/handler/progress';
/**
 * The custom-resource handler's requests and results, helper-instance strategy, against the strict
 * fake AWS account (test/fixtures/fake-aws: nothing here talks to AWS), on simulated time. Whole
 * lifecycles go through the lifecycle driver (test/fixtures/lifecycle.ts), which plays
 * CloudFormation and the provider framework; single requests call onEvent/isComplete directly.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { buildDiskImage, DiskLayout } from '../../../lib/disk-image';
import { HELPER_SELF_DESTRUCT_MINUTES, RUN_INSTANCES_RETRY } from '../../../lib/unikernel-ami/handler/helper-instance';
import { isComplete, onEvent } from '../../../lib/unikernel-ami/handler/index';
import { withRetry } from '../../../lib/unikernel-ami/handler/retry';
import { BUILD_ID_TAG, MANAGED_TAG, RETAINED_TAG, STACK_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import {
  createEvent,
  deleteEvent,
  HELPER_INSTANCE_PROFILE_ARN,
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
import { awsError, diskImageContent, useFakeAws } from '../../fixtures/fake-aws';
import { completeRequest, CREATE_FAILED_MARKER, runLifecycle } from '../../fixtures/lifecycle';
import { fakeKernel } from '../../disk-image/tools';
import { expectStagedBlocks } from './images';

const KERNELS = join(__dirname, '../../fixtures/kernels');
/** A Xen PV x86_64 kernel padded with pseudo-random bytes, so that the disk spans several 512 KiB blocks. */
const PV_KERNEL = readFileSync(join(KERNELS, 'pv-x86_64.elf'));
const KERNEL = fakeKernel(PV_KERNEL.length + 1_300_000, { header: PV_KERNEL });

// Lambda sets AWS_REGION; the helper script passes it to the AWS CLI.
process.env.AWS_REGION = REGION;
const { aws, logLines } = useFakeAws();

beforeEach(() => {
  aws.putObject(KERNEL_BUCKET, KERNEL_KEY, KERNEL, KERNEL_VERSION);
});

function tagsAsRecord(tags: unknown): Record<string, string> {
  return Object.fromEntries(((tags ?? []) as { Key: string; Value: string }[]).map((t) => [t.Key, t.Value]));
}

describe('Create, helper-instance strategy: onEvent', () => {
  test('reads the kernel version, stages exactly the image\'s non-zero blocks, and launches the helper: nothing else', async () => {
    // GIVEN a Create for a 64-bit kernel
    const request = createEvent(helperInstanceProperties({ KernelArgs: 'console=hvc0' }));
    // WHEN
    const response = await aws.drive(onEvent(request));
    // THEN the physical id is a build id, and the state names the instance
    expect(response.PhysicalResourceId).toMatch(/^mua-[0-9a-f]{16}$/);
    const [instanceId] = aws.world.instances.keys();
    expect(response.BuildState).toEqual({ Action: 'build', InstanceId: instanceId, StartedAt: expect.any(Number) });
    // (one ranged read inspects the kernel, a second streams it into the staged blocks)
    expect(aws.requests.map((r) => `${r.service}:${r.action}`)).toEqual(['s3:GetObject', 'ec2:GetEbsEncryptionByDefault', 's3:GetObject', 's3:PutObject', 's3:PutObject', 'ec2:RunInstances', 's3:GetObject', 's3:PutObject']);
    const [inspect, stream, progressRead] = aws.handlerRequests('GetObject');
    for (const read of [inspect, stream]) {
      expect(read.input).toMatchObject({ Bucket: KERNEL_BUCKET, Key: KERNEL_KEY, VersionId: KERNEL_VERSION, Range: expect.stringMatching(/^bytes=0-\d+$/) });
    }
    // (the third reads the progress object a repeated delivery of this event keeps)
    expect(progressRead.input).toEqual({ Bucket: STAGING_BUCKET, Key: progressKey(response.PhysicalResourceId) });

    // THEN blocks.gz and manifest.txt hold, in index order, the blocks an independent build of the image has
    const staged = aws.world.buckets.get(STAGING_BUCKET)!;
    const prefix = `builds/${response.PhysicalResourceId}/`;
    const image = buildDiskImage({ kernel: KERNEL, name: 'hello', kernelArgs: 'console=hvc0', layout: DiskLayout.WHOLE_VOLUME, volumeSizeGiB: 1 });
    const blockCount = expectStagedBlocks(staged.get(`${prefix}blocks.gz`)!.body, staged.get(`${prefix}manifest.txt`)!.body.toString('utf8'), image, 2 ** 30);
    expect(blockCount).toBeGreaterThanOrEqual(3);
  });

  test('RunInstances: IMDSv2, no key pair, shutdown terminates, the data volume in the launch, self-destruct user data, tagged, build id as client token', async () => {
    const response = await aws.drive(onEvent(createEvent()));
    const props = helperInstanceProperties();
    const run = aws.handlerRequests('RunInstances')[0].input as Record<string, any>;
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
      BlockDeviceMappings: [
        { DeviceName: '/dev/sdf', Ebs: { VolumeSize: 1, VolumeType: 'gp3', DeleteOnTermination: true } },
        // AL2023's root, named so that the handler role can bound every volume of the launch
        { DeviceName: '/dev/xvda', Ebs: { VolumeSize: 8, VolumeType: 'gp3', DeleteOnTermination: true } },
      ],
    });
    expect(run.KeyName).toBeUndefined();
    expect(run.BlockDeviceMappings[0].Ebs.Encrypted).toBeUndefined();
    expect(Buffer.from(run.UserData, 'base64').toString()).toContain(`shutdown -h +${HELPER_SELF_DESTRUCT_MINUTES}`);
    expect(run.TagSpecifications.map((s: { ResourceType: string }) => s.ResourceType)).toEqual(['instance', 'volume', 'network-interface']);
    for (const spec of run.TagSpecifications) {
      expect(tagsAsRecord(spec.Tags)).toMatchObject({
        project: 'hello-unikernel',
        Name: 'hello',
        [BUILD_ID_TAG]: response.PhysicalResourceId,
        [STACK_TAG]: STACK_NAME,
        [MANAGED_TAG]: 'true',
      });
    }
    // EC2 made the data volume and the root volume with the launch, both tagged, both deleted with the instance
    const volumes = [...aws.world.volumes.values()];
    expect(volumes.map((v) => [v.size, v.attachment?.deleteOnTermination, tagsAsRecord(v.tags)[BUILD_ID_TAG]]).sort()).toEqual([
      [1, true, response.PhysicalResourceId],
      [8, true, response.PhysicalResourceId],
    ]);
  });

  test('an encrypted build encrypts the data volume with the given key', async () => {
    const kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    await aws.drive(onEvent(createEvent(helperInstanceProperties({ VolumeSizeGiB: '2', Encrypted: 'true', KmsKeyArn: kmsKeyArn }))));
    const mappings = (aws.handlerRequests('RunInstances')[0].input as Record<string, any>).BlockDeviceMappings;
    expect(mappings[0].Ebs).toEqual({ VolumeSize: 2, VolumeType: 'gp3', DeleteOnTermination: true, Encrypted: true, KmsKeyId: kmsKeyArn });
    // The root volume holds only AL2023 and is deleted with the helper: it stays as the AMI has it.
    expect(mappings[1]).toEqual({ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 8, VolumeType: 'gp3', DeleteOnTermination: true } });
  });

  test('a retried request gets the same build id and, by the client token, the same instance; a new request a new one', async () => {
    const first = await aws.drive(onEvent(createEvent(undefined, 'request-a')));
    const retried = await aws.drive(onEvent(createEvent(undefined, 'request-a')));
    const other = await aws.drive(onEvent(createEvent(undefined, 'request-b')));
    expect(retried).toEqual({ ...first, BuildState: { ...first.BuildState, StartedAt: expect.any(Number) } });
    expect(other.PhysicalResourceId).not.toBe(first.PhysicalResourceId);
    expect(aws.world.instances.size).toBe(2);
  });

  test('RunInstances refused while EC2 does not see the new instance profile yet (IAM propagation): waited out', async () => {
    // GIVEN an instance profile EC2 sees only a minute after the deployment made it
    aws.world.instanceProfiles.set(HELPER_INSTANCE_PROFILE_ARN, aws.clock.now() + 60_000);
    // WHEN
    const response = await aws.drive(onEvent(createEvent()));
    // THEN
    expect(response.BuildState.InstanceId).toMatch(/^i-/);
    const refusals = aws.handlerRequests('RunInstances').filter((r) => r.error === 'InvalidParameterValue');
    expect(refusals.length).toBeGreaterThan(0);
    expect(aws.world.instances.size).toBe(1);
  });

  test('the wait for the instance profile lasts about two minutes on average, then the error goes through', async () => {
    jest.spyOn(aws.clock, 'random').mockReturnValue(0.5); // the mean of the jitter
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
});

describe('Create, helper-instance strategy: the whole build', () => {
  test('the AMI\'s snapshot holds exactly the disk image, written by the helper; the AMI is paravirtual with PV-GRUB; nothing is left but the two', async () => {
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create', kernel: KERNEL, properties: { VolumeSizeGiB: '3', KernelArgs: 'console=hvc0' } });
    // THEN
    const [created] = result.outcomes;
    expect(created.status).toBe('SUCCESS');
    const { ImageId, SnapshotId, KernelId } = created.data!;
    expect(KernelId).toBe(X86_64_AKI);
    expect(aws.world.snapshots.get(SnapshotId)!.content).toBe(diskImageContent({ kernel: KERNEL, name: 'hello', kernelArgs: 'console=hvc0', layout: DiskLayout.WHOLE_VOLUME, volumeSizeGiB: 3 }));
    const register = aws.handlerRequests('RegisterImage')[0].input as Record<string, any>;
    expect(register).toMatchObject({
      Name: `hello-${created.physicalResourceId}`,
      VirtualizationType: 'paravirtual',
      Architecture: 'x86_64',
      KernelId: X86_64_AKI,
      RootDeviceName: '/dev/sda1',
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId, DeleteOnTermination: true, VolumeSize: 3 } }],
    });
    expect(register).not.toHaveProperty('EnaSupport');
    expect(register).not.toHaveProperty('SriovNetSupport');
    expect(register.RamdiskId).toBeUndefined();
    expect(aws.world.images.get(ImageId)!.state).toBe('available');
    expect(result.leaks).toEqual([]);
    // No volume call of its own: the launch made the volume, the termination removed it
    expect(aws.requests.filter((r) => /Volume/.test(r.action) && r.action !== 'DescribeVolumes')).toEqual([]);
  });

  test('the helper script is sent once, for the launch\'s data volume, and reads the staged objects with the helper\'s own credentials', async () => {
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create', kernel: KERNEL });
    const buildId = result.outcomes[0].physicalResourceId;
    const [send] = aws.handlerRequests('SendCommand');
    expect(aws.handlerRequests('SendCommand')).toHaveLength(1);
    const instanceId = (aws.handlerRequests('TerminateInstances')[0].input.InstanceIds as string[])[0];
    const dataVolume = aws.world.snapshots.get(result.outcomes[0].data!.SnapshotId)!.volumeId;
    expect(aws.world.invocations[0].instanceId).toBe(instanceId);
    expect(send.input).toMatchObject({ DocumentName: 'AWS-RunShellScript', InstanceIds: [instanceId], Comment: buildId });
    const commands = (send.input as { Parameters: { commands: string[] } }).Parameters.commands.join('\n');
    expect(commands).toContain(`VOLUME_ID='${dataVolume}'`);
    // The helper downloads with URLs presigned for exactly its build's objects, in the stack's region, for ten minutes
    for (const [name, object] of [['BLOCKS_SOURCE', 'blocks.gz'], ['MANIFEST_SOURCE', 'manifest.txt']]) {
      const url = new URL(new RegExp(`^${name}='([^']+)'$`, 'm').exec(commands)![1]);
      expect(`${url.origin}${url.pathname}`).toBe(`https://${STAGING_BUCKET}.s3.${REGION}.amazonaws.com/builds/${buildId}/${object}`);
      expect(url.searchParams.get('X-Amz-Expires')).toBe('600');
      expect(url.searchParams.get('X-Amz-Credential')).toMatch(new RegExp(`/${REGION}/s3/aws4_request$`));
    }
    expect(aws.requests.filter((r) => r.principal === 'helper-instance' && r.service === 's3')).toEqual([]);
    const helperReads = aws.requests.filter((r) => r.principal === 'presigned-url');
    expect(helperReads.map((r) => [r.action, r.input.Key, r.error])).toEqual([
      ['GetObject', `builds/${buildId}/blocks.gz`, undefined],
      ['GetObject', `builds/${buildId}/manifest.txt`, undefined],
    ]);
    expect(aws.requests.filter((r) => r.principal === 'helper-instance').map((r) => `${r.service}:${r.action}`)).toEqual(expect.arrayContaining(['ssm:UpdateInstanceInformation']));
  });

  test('the volume is snapshotted after the script succeeded, while the helper still runs; the helper is terminated once the snapshot is complete', async () => {
    await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create', kernel: KERNEL });
    const [snapshot] = aws.handlerRequests('CreateSnapshot');
    const [terminate] = aws.handlerRequests('TerminateInstances');
    const scriptDone = aws.world.invocations[0];
    expect(scriptDone.status).toBe('Success');
    expect(snapshot.time!).toBeGreaterThan(scriptDone.startedAt!);
    expect(terminate.time!).toBeGreaterThan(snapshot.time!);
    expect(terminate.input).toEqual({ InstanceIds: [scriptDone.instanceId] });
  });

  test('a 32-bit build registers an i386 AMI with the i386 PV-GRUB', async () => {
    const kernel = readFileSync(join(KERNELS, 'pv-i386.elf'));
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create', kernel, properties: { Architecture: 'i386', KernelId: I386_AKI } });
    expect(result.outcomes[0].data!.KernelId).toBe(I386_AKI);
    expect(aws.handlerRequests('RegisterImage')[0].input).toMatchObject({ Architecture: 'i386', KernelId: I386_AKI });
  });

  test('every step logs one JSON line with the build id, and the ResponseURL never appears', async () => {
    await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    expect(logLines.length).toBeGreaterThan(8);
    const entries = logLines.map((line) => JSON.parse(line));
    for (const entry of entries) {
      expect(entry).toEqual(expect.objectContaining({ step: expect.any(String), buildId: expect.stringMatching(/^mua-/), elapsedMs: expect.any(Number) }));
    }
    expect(entries.map((e) => e.step)).toEqual(expect.arrayContaining(['lay-out-disk', 'stage-image', 'run-instances', 'send-helper-script', 'create-snapshot', 'register-image', 'complete']));
    expect(logLines.join('\n')).not.toContain(RESPONSE_URL.split('?')[0]);
  });
});

describe('Create: failures', () => {
  test.each([
    ['pvh-only.elf', /Xen PVH-only kernel/],
    ['junk.bin', /neither an ELF file, a gzip-compressed one nor a Linux bzImage/],
    ['pv-i386.elf', /is ELF32 .*\(i386\), but the AMI is to be x86_64 with the x86_64 PV-GRUB aki-5c21674b, which cannot start it\. Set the architecture to i386/],
  ])('the kernel %s is refused before anything is created', async (file, message) => {
    aws.putObject(KERNEL_BUCKET, KERNEL_KEY, readFileSync(join(KERNELS, file)), KERNEL_VERSION);
    await expect(aws.drive(onEvent(createEvent()))).rejects.toThrow(message);
    expect(aws.requests.map((r) => r.action)).toEqual(['GetObject']);
  });

  test('a missing kernel object fails with the object named', async () => {
    await expect(aws.drive(onEvent(createEvent(helperInstanceProperties({ KernelObjectVersion: 'other-version' }))))).rejects.toThrow(
      `s3:GetObject s3://${KERNEL_BUCKET}/${KERNEL_KEY} (version other-version) failed: The specified version does not exist.`,
    );
    expect(aws.handlerRequests('RunInstances')).toEqual([]);
  });

  test('invalid properties are refused with the property, its value and what was expected', async () => {
    await expect(aws.drive(onEvent(createEvent(helperInstanceProperties({ Layout: 'gpt' }))))).rejects.toThrow(
      'Invalid resource property Layout "gpt": expected one of whole, mbr.',
    );
    await expect(aws.drive(onEvent(createEvent(helperInstanceProperties({ VolumeSizeGiB: '1.5' }))))).rejects.toThrow(/VolumeSizeGiB "1.5"/);
    expect(aws.requests).toEqual([]);
  });

  test('an instance type EC2 does not have: onEvent fails naming the call, and the staged objects are removed', async () => {
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create', properties: { Helper: { ...helperInstanceProperties().Helper!, InstanceType: 't3.enormous' } } });
    expect(result.outcomes[0]).toMatchObject({ status: 'FAILED', physicalResourceId: CREATE_FAILED_MARKER });
    expect(result.outcomes[0].failureReason).toMatch(/^ec2:RunInstances \(t3\.enormous in subnet-0abc1234\) failed: Value \(t3\.enormous\) for parameter instanceType is invalid\./);
    expect(aws.handlerRequests('RunInstances')).toHaveLength(1);
    expect(result.leaks).toEqual([]);
  });

  test('a helper whose SSM agent never comes online fails the build with what its subnet needs, and leaves nothing', async () => {
    aws.configure({ ssmReachable: false });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    expect(result.outcomes[0].status).toBe('FAILED');
    expect(result.outcomes[0].failureReason).toMatch(/has run for 1[5-6] minutes without its SSM agent coming online\. Its subnet needs a route to the SSM and S3 endpoints/);
    expect(result.leaks).toEqual([]);
  });

  test('a failed script fails the build with its own message; the helper, its volumes and the staged objects are removed', async () => {
    aws.injectFault({ kind: 'error-state', service: 'ssm', action: 'SendCommand' });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    expect(result.outcomes[0].status).toBe('FAILED');
    expect(result.outcomes[0].failureReason).toMatch(/helper instance i-\S+ could not write the disk image \(SSM command \S+ Failed, exit code 1\): mirage-unikernel-ami helper: read-back verification failed/);
    expect(result.leaks).toEqual([]);
  });
});

describe('Update', () => {
  async function existingBuild(props: UnikernelAmiProperties = helperInstanceProperties()) {
    const built = await completeRequest(aws, createEvent(props));
    aws.requests.length = 0;
    return { buildId: built.response.PhysicalResourceId, attributes: built.done.Data! };
  }

  test.each<[string, Partial<UnikernelAmiProperties>]>([
    ['a new kernel version', { KernelObjectVersion: 'v4' }],
    ['other kernel arguments', { KernelArgs: '--ipv4=10.0.0.9/24' }],
    ['another layout', { Layout: 'mbr' }],
    ['a bigger volume', { VolumeSizeGiB: '2' }],
    ['encryption', { Encrypted: 'true' }],
  ])('%s: a new build under a new physical id; the old AMI is left for CloudFormation\'s Delete', async (_what, change) => {
    // GIVEN a finished build
    const old = await existingBuild();
    aws.putObject(KERNEL_BUCKET, KERNEL_KEY, KERNEL, change.KernelObjectVersion ?? KERNEL_VERSION);
    // WHEN
    const response = await aws.drive(onEvent(updateEvent(old.buildId, helperInstanceProperties(change), helperInstanceProperties(), 'update-1')));
    // THEN
    expect(response.PhysicalResourceId).toMatch(/^mua-[0-9a-f]{16}$/);
    expect(response.PhysicalResourceId).not.toBe(old.buildId);
    expect(response.BuildState.Action).toBe('build');
    expect(aws.handlerRequests('RunInstances')).toHaveLength(1);
    expect(aws.handlerRequests('DeregisterImage')).toEqual([]);
    expect(aws.world.images.get(old.attributes.ImageId)!.state).toBe('available');
  });

  test('tags only: same physical id, tags updated on the AMI and snapshot, removed ones deleted, nothing rebuilt', async () => {
    // GIVEN a finished build tagged project=hello-unikernel, team=a
    const oldProps = helperInstanceProperties({ Tags: { project: 'hello-unikernel', team: 'a' } });
    const old = await existingBuild(oldProps);
    const { ImageId, SnapshotId } = old.attributes;
    // WHEN the tags become project=hello-unikernel, owner=ops (team removed) and the removal policy changes
    const newProps = helperInstanceProperties({ Tags: { project: 'hello-unikernel', owner: 'ops' }, RemovalPolicy: 'retain' });
    const request = updateEvent(old.buildId, newProps, oldProps);
    const response = await aws.drive(onEvent(request));
    // THEN
    expect(response.PhysicalResourceId).toBe(old.buildId);
    const ImageName = `hello-${old.buildId}`;
    expect(response.Data).toEqual({ ImageId, SnapshotId, KernelId: X86_64_AKI, ImageName });
    expect(aws.handlerRequests('DeleteTags')[0].input).toEqual({ Resources: [ImageId, SnapshotId], Tags: [{ Key: 'team' }] });
    for (const id of [ImageId, SnapshotId]) {
      expect(aws.tagsOf(id)).toMatchObject({ project: 'hello-unikernel', owner: 'ops', Name: 'hello', [BUILD_ID_TAG]: old.buildId, [STACK_TAG]: STACK_NAME, [MANAGED_TAG]: 'true' });
      expect(aws.tagsOf(id)).not.toHaveProperty('team');
    }
    expect(aws.handlerRequests('GetObject')).toEqual([]);
    expect(aws.handlerRequests('RunInstances')).toEqual([]);
    expect(aws.handlerRequests('RegisterImage')).toEqual([]);
    // isComplete completes at once with the same attributes, having changed nothing else of the AMI
    expect(await aws.drive(isComplete(isCompleteEvent(request, response)))).toEqual({ IsComplete: true, Data: { ImageId, SnapshotId, KernelId: X86_64_AKI, ImageName } });
    expect(['ModifyImageAttribute', 'ModifySnapshotAttribute', 'EnableImageDeprecation', 'EnableImageDeregistrationProtection'].flatMap((a) => aws.handlerRequests(a))).toEqual([]);
  });

  test('a user tag cannot overwrite the build\'s own tags', async () => {
    const old = await existingBuild();
    const newProps = helperInstanceProperties({ Tags: { [BUILD_ID_TAG]: 'mua-ffffffffffffffff', [MANAGED_TAG]: 'false', Name: 'other' } });
    await aws.drive(onEvent(updateEvent(old.buildId, newProps, helperInstanceProperties())));
    expect(aws.tagsOf(old.attributes.ImageId)).toMatchObject({ [BUILD_ID_TAG]: old.buildId, [MANAGED_TAG]: 'true', Name: 'hello' });
  });
});

describe('Delete', () => {
  test('destroy: deregisters the AMI and deletes its snapshot', async () => {
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'delete' });
    const [created, deleted] = result.outcomes;
    expect(deleted).toMatchObject({ status: 'SUCCESS', physicalResourceId: created.physicalResourceId });
    expect(aws.handlerRequests('DeregisterImage').map((r) => r.input)).toEqual([{ ImageId: created.data!.ImageId }]);
    expect(aws.handlerRequests('DeleteSnapshot').map((r) => r.input)).toContainEqual({ SnapshotId: created.data!.SnapshotId });
    expect(result.leaks).toEqual([]);
    expect(aws.world.snapshots.size).toBe(0);
  });

  test('retain: keeps the AMI and its snapshot, marked as retained so that no rollback takes them back', async () => {
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'retain' });
    const { ImageId, SnapshotId } = result.outcomes[0].data!;
    expect(result.outcomes[1].status).toBe('SUCCESS');
    expect(aws.handlerRequests('DeregisterImage')).toEqual([]);
    expect(aws.world.images.get(ImageId)!.state).toBe('available');
    expect([...aws.world.snapshots.keys()]).toEqual([SnapshotId]);
    expect(aws.tagsOf(ImageId)[RETAINED_TAG]).toBe('true');
    expect(result.leaks).toEqual([]);
  });

  test('what is already gone counts as deleted; a snapshot still held by its just-deregistered AMI is deleted a moment later', async () => {
    // GIVEN a finished build whose AMI someone deregistered by hand an hour ago
    const built = await completeRequest(aws, createEvent());
    aws.world.images.get(built.done.Data!.ImageId)!.state = 'deregistered';
    aws.world.images.get(built.done.Data!.ImageId)!.deregisteredAt = aws.clock.now();
    await aws.advance(3600_000);
    aws.requests.length = 0;
    // WHEN
    const request = deleteEvent(built.response.PhysicalResourceId);
    const response = await aws.drive(onEvent(request));
    // THEN
    expect(await aws.drive(isComplete(isCompleteEvent(request, response)))).toEqual({ IsComplete: true });
    expect(aws.world.snapshots.size).toBe(0);
  });

  test('a finished helper build deleted after a switch to ebsDirect (staging bucket gone): the AMI and snapshot go, S3 is not touched', async () => {
    const built = await completeRequest(aws, createEvent());
    aws.world.buckets.delete(STAGING_BUCKET);
    aws.requests.length = 0;
    const { done } = await completeRequest(aws, deleteEvent(built.response.PhysicalResourceId, helperInstanceProperties({ RemovalPolicy: 'destroy' })), { polls: 11 });
    expect(done).toEqual({ IsComplete: true });
    expect(aws.world.images.get(built.done.Data!.ImageId)!.state).toBe('deregistered');
    expect(aws.requests.filter((r) => r.service === 's3')).toEqual([]);
  });

  test('a Delete right after the Create\'s onEvent (EC2 not listing the new helper yet) terminates it; other builds are left alone', async () => {
    const other = await completeRequest(aws, createEvent(undefined, 'other-request'));
    aws.requests.length = 0;
    const mine = await aws.drive(onEvent(createEvent()));
    await completeRequest(aws, deleteEvent(mine.PhysicalResourceId));
    // Terminated by the Delete (which, having seen no AMI of the build, goes on for EC2's lag first).
    expect(['shutting-down', 'terminated']).toContain(aws.world.instances.get(mine.BuildState.InstanceId!)!.state);
    expect(aws.world.images.get(other.done.Data!.ImageId)!.state).toBe('available');
    expect(aws.handlerRequests('DeregisterImage')).toEqual([]);
    expect(new Set(aws.handlerRequests('TerminateInstances').map((r) => JSON.stringify(r.input)))).toEqual(new Set([JSON.stringify({ InstanceIds: [mine.BuildState.InstanceId] })]));
  });

  test.each([CREATE_FAILED_MARKER, 'some-other-id'])('a physical id that is no build (%s) is a no-op', async (physicalId) => {
    const request = deleteEvent(physicalId);
    const response = await aws.drive(onEvent(request));
    expect(response.PhysicalResourceId).toBe(physicalId);
    expect(await aws.drive(isComplete(isCompleteEvent(request, response)))).toEqual({ IsComplete: true });
    expect(aws.requests).toEqual([]);
  });
});
