/**
 * One removal pass of a helper build (cleanup.ts removeBuildPass) on the fake account: what it
 * removes by the build's tag, and what it reports as still there. Volumes: an unattached one (made
 * by an earlier version of the handler, outside the helper's launch) is deleted; one attached with
 * DeleteOnTermination to a helper being terminated goes with it; one attached otherwise is reported.
 */
import { AttachVolumeCommand, CreateVolumeCommand, EC2Client, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { failedBuild, KnownIds, Leftover, removeBuild, removeBuildPass } from '../../../lib/unikernel-ami/handler/cleanup';
import { clients } from '../../../lib/unikernel-ami/handler/clients';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { BUILD_ID_TAG } from '../../../lib/unikernel-ami/types';
import { HELPER_IMAGE_ID, HELPER_SUBNET_ID, helperInstanceProperties, REGION } from '../../fixtures/custom-resource';
import { AVAILABILITY_ZONE, awsError, useFakeAws } from '../../fixtures/fake-aws';

process.env.AWS_REGION = REGION;
const { aws, logLines } = useFakeAws();
const ec2 = new EC2Client({ region: REGION });

const BUILD_ID = 'mua-00000000000000f1';
const buildTags = (resourceType: 'volume' | 'instance') => [{ ResourceType: resourceType, Tags: [{ Key: BUILD_ID_TAG, Value: BUILD_ID }] }];

async function createVolume(tagged = true): Promise<string> {
  const response = await aws.drive(ec2.send(new CreateVolumeCommand({ AvailabilityZone: AVAILABILITY_ZONE, Size: 1, ...(tagged ? { TagSpecifications: buildTags('volume') } : {}) })));
  return response.VolumeId!;
}

async function launch(tagged: boolean): Promise<string> {
  const response = await aws.drive(ec2.send(new RunInstancesCommand({
    ImageId: HELPER_IMAGE_ID, InstanceType: 't3.small', MinCount: 1, MaxCount: 1, SubnetId: HELPER_SUBNET_ID,
    ...(tagged ? { TagSpecifications: buildTags('instance') } : {}),
  })));
  return response.Instances![0].InstanceId!;
}

/**
 * An instance with a data volume deleted on termination, as the handler launches its helper: the
 * launch tags the volumes (root and data) as the build's, and the instance too unless `instanceOfBuild` is false.
 */
async function helper(instanceOfBuild = true): Promise<{ instanceId: string; volumeIds: string[] }> {
  const response = await aws.drive(ec2.send(new RunInstancesCommand({
    ImageId: HELPER_IMAGE_ID, InstanceType: 't3.small', MinCount: 1, MaxCount: 1, SubnetId: HELPER_SUBNET_ID,
    BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 1, DeleteOnTermination: true } }],
    TagSpecifications: [...(instanceOfBuild ? buildTags('instance') : []), ...buildTags('volume')],
  })));
  const instanceId = response.Instances![0].InstanceId!;
  await aws.advance(120_000);
  return { instanceId, volumeIds: [...aws.world.volumes.values()].filter((v) => v.attachment?.instanceId === instanceId).map((v) => v.id) };
}

const pass = (known?: KnownIds, removed?: Set<string>) =>
  aws.drive(removeBuildPass(clients, failedBuild(BUILD_ID, helperInstanceProperties(), known), new StepLog(BUILD_ID), removed));
const terminateRequests = () => aws.requests.filter((r) => r.principal === 'handler' && r.action === 'TerminateInstances').map((r) => r.input.InstanceIds);
/** A deleted volume stays listed as `deleted` for a while, then the fake forgets it (`gone`). */
const volumeState = (volumeId: string) => aws.world.volumes.get(volumeId)?.state ?? 'gone';
const GONE = /^(deleted|gone)$/;
const deleteVolumeRequests = () => aws.requests.filter((r) => r.action === 'DeleteVolume');

describe('volumes of a helper build', () => {
  test('an unattached volume of the build is deleted by its id, and is not reported as left', async () => {
    // GIVEN a volume of the build that is attached to nothing (made by an earlier version of the handler)
    const volumeId = await createVolume();
    await aws.advance(60_000);
    expect(volumeState(volumeId)).toBe('available');
    // WHEN
    const left = await pass();
    // THEN
    expect(deleteVolumeRequests().map((r) => r.input.VolumeId)).toEqual([volumeId]);
    await aws.advance(60_000);
    expect(volumeState(volumeId)).toMatch(GONE);
    expect(left).toEqual([]);
    expect(logLines.map((line) => JSON.parse(line))).toContainEqual(expect.objectContaining({ step: 'delete-volume', volumeId }));
  });

  test('a volume of another build, or of none, is left alone', async () => {
    const untagged = await createVolume(false);
    await aws.advance(60_000);
    expect(await pass()).toEqual([]);
    expect(deleteVolumeRequests()).toEqual([]);
    expect(volumeState(untagged)).toBe('available');
  });

  test('a volume of the build attached (without DeleteOnTermination) to an instance that is not the build\'s is reported as left, never detached', async () => {
    // GIVEN the build's volume attached to an instance the build did not launch
    const instanceId = await launch(false);
    const volumeId = await createVolume();
    await aws.advance(60_000);
    await aws.drive(ec2.send(new AttachVolumeCommand({ InstanceId: instanceId, VolumeId: volumeId, Device: '/dev/sdf' })));
    await aws.advance(60_000);
    expect(volumeState(volumeId)).toBe('in-use');
    // WHEN
    const left = await pass();
    // THEN
    expect(left).toEqual([{ kind: 'volume', id: volumeId } satisfies Leftover]);
    expect(deleteVolumeRequests()).toEqual([]);
    expect(aws.requests.filter((r) => r.action === 'DetachVolume' || r.action === 'TerminateInstances')).toEqual([]);
  });

  test('a volume attached with DeleteOnTermination to the build\'s helper goes with the helper: the helper is terminated and the volume is not reported', async () => {
    // GIVEN the build's helper, with a data volume in its launch that is deleted on termination
    const { instanceId, volumeIds: [volumeId] } = await helper();
    expect(volumeState(volumeId)).toBe('in-use');
    // WHEN
    const left = await pass();
    // THEN
    expect(aws.requests.filter((r) => r.action === 'TerminateInstances').map((r) => r.input.InstanceIds)).toEqual([[instanceId]]);
    expect(left).toEqual([]);
    expect(deleteVolumeRequests()).toEqual([]);
    await aws.advance(300_000);
    expect(volumeState(volumeId)).toMatch(GONE);
  });

  test('a volume of the build attached with DeleteOnTermination to an instance this pass does not terminate (not the build\'s) is reported as left', async () => {
    // GIVEN an instance of no build whose launch made volumes tagged as the build's (root and data)
    const { volumeIds } = await helper(false);
    expect(volumeIds).toHaveLength(2);
    // WHEN
    const left = await pass();
    // THEN the instance is not the build's to terminate, so its volumes stay, and are reported
    expect(aws.requests.filter((r) => r.action === 'TerminateInstances')).toEqual([]);
    expect(left).toEqual(volumeIds.map((id) => ({ kind: 'volume', id })));
  });

  test('a second pass right after reports nothing: a volume being deleted is not a leftover', async () => {
    await createVolume();
    await aws.advance(60_000);
    expect(await pass()).toEqual([]);
    expect(await pass()).toEqual([]);
    expect(deleteVolumeRequests()).toHaveLength(1);
  });

  test('a volume EC2 lists by tag but does not know by id yet (just created) is reported as left, not as gone', async () => {
    aws.configure({ lagByIdMs: 5 * 60_000, lagByFilterMs: 0 });
    const volumeId = await createVolume();
    await aws.advance(10_000);
    expect(await pass()).toEqual([{ kind: 'volume', id: volumeId }]);
    expect(deleteVolumeRequests().map((r) => r.error)).toEqual(['InvalidVolume.NotFound']);
  });

  test.each(['DescribeVolumes', 'DeleteVolume'])('%s refused: the pass reports the refusal, naming the call, as not transient', async (action) => {
    await createVolume();
    await aws.advance(60_000);
    aws.injectFault({ kind: 'refuse', service: 'ec2', action, maxHits: Infinity, error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', { status: 403 }) });
    const left = await pass();
    expect(left).toEqual([{ kind: 'error', id: expect.stringContaining(`ec2:${action}`), transient: false }]);
  });

  test('a volume of the build in the error state is deleted too', async () => {
    const volumeId = await createVolume();
    await aws.advance(60_000);
    aws.world.volumes.get(volumeId)!.state = 'error';
    expect(await pass()).toEqual([]);
    expect(deleteVolumeRequests().map((r) => r.input.VolumeId)).toEqual([volumeId]);
  });
});

describe('instances of a helper build', () => {
  test('a helper already shutting down is not terminated again, and its volumes are not reported: they go with it', async () => {
    const { instanceId } = await helper();
    await aws.drive(ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })));
    expect(aws.world.instances.get(instanceId)!.state).toBe('shutting-down');
    const terminationsBefore = terminateRequests().length;
    // (whether the pass knows its id from a launch or not)
    expect(await pass({ instanceIds: [instanceId] })).toEqual([]);
    // (the fake records this test's own TerminateInstances too)
    expect(terminateRequests()).toHaveLength(terminationsBefore);
  });

  test('a helper this invocation launched, which the tag filter does not list yet, is terminated by its id and logged', async () => {
    // GIVEN tag-filtered reads that leave the new helper out for ten minutes
    aws.configure({ lagByFilterMs: 10 * 60_000 });
    const { instanceId } = await helper();
    // WHEN the pass knows the id from the launch
    const left = await pass({ instanceIds: [instanceId], createdAt: aws.clock.now() - 120_000 });
    // THEN
    expect(terminateRequests()).toEqual([[instanceId]]);
    expect(left).toEqual([]);
    expect(logLines.map((line) => JSON.parse(line))).toContainEqual(expect.objectContaining({ step: 'terminate-helper', instanceId }));
  });

  test('a helper an earlier pass terminated is not terminated again', async () => {
    aws.configure({ lagByFilterMs: 10 * 60_000 });
    const { instanceId } = await helper();
    expect(await pass({ instanceIds: [instanceId] }, new Set([instanceId]))).toEqual([]);
    expect(terminateRequests()).toEqual([]);
  });

  test('a termination EC2 refuses is reported, naming the call, as not transient', async () => {
    const { instanceId } = await helper();
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'TerminateInstances', maxHits: Infinity, error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', { status: 403 }) });
    expect(await pass()).toEqual([{ kind: 'error', id: expect.stringContaining('ec2:TerminateInstances'), transient: false }]);
    expect(aws.world.instances.get(instanceId)!.state).toBe('running');
  });

  test('a known helper EC2 does not know yet (just launched) is reported as left, with when it was launched, not as gone', async () => {
    const launchedAt = aws.clock.now();
    const unknown = 'i-0123456789abcdef0';
    const left = await pass({ instanceIds: [unknown], createdAt: launchedAt });
    expect(terminateRequests()).toEqual([[unknown]]);
    expect(left).toEqual([{ kind: 'instance', id: unknown, createdAt: launchedAt }]);
  });
});

describe('removeBuild', () => {
  test('repeats passes, with waits, until nothing is left: a volume whose deletion the first pass could not do goes in a later one', async () => {
    // GIVEN the build's volume, whose first DeleteVolume EC2 refuses
    const volumeId = await createVolume();
    await aws.advance(60_000);
    const first = aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DeleteVolume', maxHits: 1, error: () => awsError('IncorrectState', 'The volume is not in a state to be deleted.') });
    // WHEN
    const left = await aws.drive(removeBuild(clients, failedBuild(BUILD_ID, helperInstanceProperties()), new StepLog(BUILD_ID), 5 * 60_000));
    // THEN
    expect(first.hits).toBe(1);
    expect(left).toEqual([]);
    expect(deleteVolumeRequests().length).toBeGreaterThanOrEqual(2);
    await aws.advance(60_000);
    expect(volumeState(volumeId)).toMatch(GONE);
  });
});
