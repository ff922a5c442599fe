/**
 * Issue 15, items 1 to 3: a build never destroys what it delivered when the provider framework
 * delivers an event again (one after the other, or at once), when EC2's tag-filtered reads are
 * stale, or when a snapshot is found completed without this attempt having completed it. Driven
 * through onEvent/isComplete on the strict fake AWS account, on simulated time.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { parseBuildRecord } from '../../../lib/unikernel-ami/handler/build-record';
import { progressKey } from '../../../lib/unikernel-ami/handler/progress';
import { IsCompleteResponse, OnEventRequest } from '../../../lib/unikernel-ami/handler/events';
import { isComplete, onEvent } from '../../../lib/unikernel-ami/handler/index';
import { BUILD_ID_TAG, BUILD_RECORD_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import {
  createEvent,
  deleteEvent,
  ebsDirectProperties,
  helperInstanceProperties,
  isCompleteEvent,
  KERNEL_BUCKET,
  KERNEL_KEY,
  KERNEL_VERSION,
  REGION,
  updateEvent,
} from '../../fixtures/custom-resource';
import { FakeAws, useFakeAws } from '../../fixtures/fake-aws';
import { completeRequest, findLeaks, PROVIDER, Strategy, STRATEGIES } from '../../fixtures/lifecycle';
import { fakeKernel } from '../../disk-image/tools';

const PV_KERNEL = readFileSync(join(__dirname, '../../fixtures/kernels/pv-x86_64.elf'));
/** A kernel padded so that the disk image spans several 512 KiB blocks. */
const KERNEL = fakeKernel(PV_KERNEL.length + 1_300_000, { header: PV_KERNEL });

process.env.AWS_REGION = REGION;
const { aws } = useFakeAws();

beforeEach(() => {
  aws.putObject(KERNEL_BUCKET, KERNEL_KEY, KERNEL, KERNEL_VERSION);
});

function propertiesOf(strategy: Strategy, overrides: Partial<UnikernelAmiProperties> = {}): UnikernelAmiProperties {
  return strategy === 'helper-instance' ? helperInstanceProperties(overrides) : ebsDirectProperties(overrides);
}

/** The AMI and its root snapshot as the account holds them now. */
function imageState(fake: FakeAws, imageId: string) {
  fake.world.advance();
  const image = fake.world.images.get(imageId);
  const snapshotId = image?.blockDeviceMappings.find((m) => m.DeviceName === image.rootDeviceName)?.Ebs?.SnapshotId;
  return { image: image?.state, snapshot: snapshotId ? fake.world.snapshots.get(snapshotId)?.state : undefined };
}

/**
 * One execution of the provider framework's for a request, for running several side by side inside
 * one aws.drive: onEvent, then isComplete every query interval of simulated time until it is complete.
 */
async function execution(request: OnEventRequest) {
  const response = await onEvent(request);
  const event = isCompleteEvent(request, response);
  for (let poll = 0; poll < 400; poll++) {
    const done = await isComplete(event);
    if (done.IsComplete) {
      return { response, done };
    }
    await aws.clock.sleep(PROVIDER.queryIntervalMs);
  }
  throw new Error(`${request.RequestType} not complete after 400 polls`);
}

/** Runs a request to completion, returning its physical id and the attributes CloudFormation got. */
async function complete(request: OnEventRequest) {
  const { response, done } = await completeRequest(aws, request);
  return { physicalId: response.PhysicalResourceId, data: done.Data!, event: isCompleteEvent(request, response) };
}

describe('item 1: a repeated delivery answers what the first answered and never removes the AMI', () => {
  test.each(STRATEGIES)('%s: an extra isComplete after success answers the same attributes, and the AMI and snapshot stay', async (strategy) => {
    // GIVEN a Create that completed
    const first = await complete(createEvent(propertiesOf(strategy)));
    // WHEN the framework delivers the final isComplete again, at once and a minute later
    const again = await aws.drive(isComplete(first.event));
    await aws.advance(60_000);
    const later = await aws.drive(isComplete(first.event));
    // THEN both answer complete with the same attributes, and the AMI CloudFormation holds is intact
    expect(again).toEqual({ IsComplete: true, Data: first.data });
    expect(later).toEqual({ IsComplete: true, Data: first.data });
    expect(imageState(aws, first.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
    expect(findLeaks(aws, [first.physicalId])).toEqual([]);
  });

  test('helper-instance: an extra isComplete while EC2\'s tag filter leaves the new AMI out for 20 s answers the same, and the AMI stays', async () => {
    // GIVEN a Create that completed
    const first = await complete(createEvent(propertiesOf('helper-instance')));
    // WHEN the final isComplete is delivered again while tag-filtered reads leave the AMI out for 20 s
    const since = aws.clock.now();
    aws.configure({ staleFilteredReads: [{ id: first.data.ImageId, until: since + 20_000 }] });
    aws.requests.length = 0;
    const again = await aws.drive(isComplete(first.event));
    // THEN the answer is still the first one (from the record on the build's snapshot, read by its
    // id, as the filter does not list the AMI), and no AMI is registered again
    expect(again).toEqual({ IsComplete: true, Data: first.data });
    expect(aws.handlerRequests('RegisterImage')).toEqual([]);
    expect(imageState(aws, first.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
  });

  test.each(STRATEGIES)('%s: a Create delivered again after it completed answers the same build and attributes, and leaves nothing else', async (strategy) => {
    // GIVEN a Create that completed
    const request = createEvent(propertiesOf(strategy));
    const first = await complete(request);
    // WHEN the same Create is delivered again, onEvent and isComplete
    await aws.advance(60_000);
    const again = await complete(request);
    // THEN the answer is the same, the AMI is intact, and nothing of the repeat is left
    expect(again.physicalId).toBe(first.physicalId);
    expect(again.data).toEqual(first.data);
    await aws.advance(2 * 3600_000);
    expect(imageState(aws, first.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
    expect(findLeaks(aws, [first.physicalId])).toEqual([]);
  });

  test.each(STRATEGIES)('%s: the build record on the AMI and its snapshot says complete, with the build\'s ids and stages', async (strategy) => {
    // GIVEN a Create that completed
    const first = await complete(createEvent(propertiesOf(strategy)));
    // THEN the AMI and the snapshot carry one record, parseable, naming them
    const imageTags = aws.tagsOf(first.data.ImageId);
    expect(aws.tagsOf(first.data.SnapshotId)[BUILD_RECORD_TAG]).toBe(imageTags[BUILD_RECORD_TAG]);
    const record = parseBuildRecord(imageTags[BUILD_RECORD_TAG]);
    expect(record).toMatchObject({ version: 1, outcome: 'complete', imageId: first.data.ImageId, snapshotId: first.data.SnapshotId, progressPercent: 100 });
    expect(record!.stages.map((s) => s.stage)).toEqual(['snapshot-started', 'image-registered', 'complete']);
    const times = [record!.startedAt, ...record!.stages.map((s) => s.at)];
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    if (strategy === 'ebs-direct') {
      const snapshot = aws.world.snapshots.get(first.data.SnapshotId)!;
      expect(record!.blocks).toBe(snapshot.direct!.blocks.size);
    }
  });

  test.each(STRATEGIES)('%s: onEvent delivered twice at once, each execution polling isComplete, answers one build and leaves nothing else', async (strategy) => {
    // GIVEN one Create delivered twice, the two executions running side by side
    const request = createEvent(propertiesOf(strategy));
    const [a, b] = await aws.drive(Promise.all([execution(request), execution(request)]));
    // THEN both answer the same build and attributes
    expect(b.response.PhysicalResourceId).toBe(a.response.PhysicalResourceId);
    expect(b.done).toEqual(a.done);
    // AND one AMI of the build is there, available, and nothing else of it
    await aws.advance(2 * 3600_000);
    expect(imageState(aws, a.done.Data!.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
    expect(findLeaks(aws, [a.response.PhysicalResourceId])).toEqual([]);
  });

  test.each(STRATEGIES)('%s: two isComplete deliveries at once after the build is done answer the same', async (strategy) => {
    // GIVEN a Create that completed
    const first = await complete(createEvent(propertiesOf(strategy)));
    // WHEN the final isComplete is delivered twice more, at once
    const answers: IsCompleteResponse[] = await aws.drive(Promise.all([isComplete(first.event), isComplete(first.event)]));
    // THEN both answer as the first did
    expect(answers).toEqual([{ IsComplete: true, Data: first.data }, { IsComplete: true, Data: first.data }]);
    expect(imageState(aws, first.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
  });
});

describe('item 2: a sweep or removal never deregisters an AMI on the strength of a stale filtered read', () => {
  test.each(STRATEGIES)('%s: the cleanup Delete of the old build, with the live AMI read as pending for ten minutes, leaves the live AMI', async (strategy) => {
    // GIVEN a Create, then a rebuilding Update that completed (the live build)
    const p1 = propertiesOf(strategy);
    const p2 = { ...p1, KernelArgs: 'console=hvc0' };
    const old = await complete(createEvent(p1));
    const live = await complete(updateEvent(old.physicalId, p2, p1));
    expect(live.physicalId).not.toBe(old.physicalId);
    // WHEN EC2's tag filters show the live AMI as pending for ten minutes during the cleanup Delete of the old build
    aws.configure({ staleFilteredReads: [{ id: live.data.ImageId, state: 'pending', until: aws.clock.now() + 10 * 60_000 }] });
    await complete(deleteEvent(old.physicalId, p1));
    // THEN the live AMI and its snapshot are still there, and the old build is gone
    expect(imageState(aws, live.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
    expect(imageState(aws, old.data.ImageId).image).toBe('deregistered');
    await aws.advance(2 * 3600_000);
    expect(findLeaks(aws, [live.physicalId])).toEqual([]);
  });

  test.each(STRATEGIES)('%s: the cleanup Delete of the old build, with the live AMI left out of one filtered read, leaves the live AMI', async (strategy) => {
    // GIVEN a Create, then a rebuilding Update that completed
    const p1 = propertiesOf(strategy);
    const p2 = { ...p1, KernelArgs: 'console=hvc0' };
    const old = await complete(createEvent(p1));
    const live = await complete(updateEvent(old.physicalId, p2, p1));
    // WHEN the first tag-filtered read of the cleanup Delete leaves the live AMI out
    aws.configure({ staleFilteredReads: [{ id: live.data.ImageId, reads: 1 }] });
    await complete(deleteEvent(old.physicalId, p1));
    // THEN the stale answer was given, and the live AMI is still there
    expect(aws.world.settings.staleFilteredReads[0].reads).toBe(0);
    expect(imageState(aws, live.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
  });

  test.each(STRATEGIES)('%s: the Delete of a RETAIN build whose AMI filtered reads show as pending keeps the AMI', async (strategy) => {
    // GIVEN a retained build that completed
    const props = propertiesOf(strategy, { RemovalPolicy: 'retain' });
    const build = await complete(createEvent(props));
    // WHEN the stack is deleted while EC2's tag filters show its AMI as pending
    aws.configure({ staleFilteredReads: [{ id: build.data.ImageId, state: 'pending', until: aws.clock.now() + 10 * 60_000 }] });
    await complete(deleteEvent(build.physicalId, props));
    // THEN the AMI and its snapshot are kept
    expect(imageState(aws, build.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
  });

  test.each(STRATEGIES)('%s: an Update onEvent delivered again does not sweep the build its first delivery started', async (strategy) => {
    // GIVEN a completed Create, and a rebuilding Update whose onEvent ran once
    const p1 = propertiesOf(strategy);
    const p2 = { ...p1, KernelArgs: 'console=hvc0' };
    const old = await complete(createEvent(p1));
    const update = updateEvent(old.physicalId, p2, p1);
    const first = await aws.drive(onEvent(update));
    // WHEN the same onEvent is delivered again once EC2's tag filters list what the first started
    await aws.advance(30_000);
    const second = await aws.drive(onEvent(update));
    // THEN the second answers the same build, and the first delivery's build still completes
    expect(second.PhysicalResourceId).toBe(first.PhysicalResourceId);
    if (first.BuildState.InstanceId) {
      expect(aws.world.instances.get(first.BuildState.InstanceId)?.state).toMatch(/^(pending|running)$/);
    }
    const event = isCompleteEvent(update, first);
    let done: IsCompleteResponse = { IsComplete: false };
    for (let poll = 0; poll < 200 && !done.IsComplete; poll++) {
      done = await aws.drive(isComplete(event));
      await aws.advance(15_000);
    }
    expect(done.IsComplete).toBe(true);
    expect(imageState(aws, done.Data!.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
  });
});

describe('item 3: a snapshot found completed is checked against the disk image before an AMI is made of it', () => {
  test('an EBS-direct snapshot that EC2 shows completed before any block is written fails the build, registering no AMI', async () => {
    // GIVEN an account (an emulator) whose new direct snapshots are completed at once, holding nothing
    aws.configure({ directSnapshotCompletedAtStart: true });
    const request = createEvent(ebsDirectProperties());
    // WHEN the Create's onEvent runs
    const outcome = aws.drive(onEvent(request));
    // THEN it fails saying the snapshot does not hold the image, and no AMI is registered
    await expect(outcome).rejects.toThrow(/does not hold the disk image \(it lists 0 blocks, the image writes \d+/);
    expect(aws.handlerRequests('ListSnapshotBlocks').length).toBeGreaterThan(0);
    expect(aws.handlerRequests('RegisterImage')).toEqual([]);
    await aws.advance(2 * 3600_000);
    expect(findLeaks(aws, [])).toEqual([]);
  });

  test('a repeated EBS-direct onEvent finds its snapshot completed, lists every page of its blocks, reads back a sample, and answers the same', async () => {
    // GIVEN a Create that completed
    const request = createEvent(ebsDirectProperties());
    const first = await complete(request);
    const writtenBlocks = aws.world.snapshots.get(first.data.SnapshotId)!.direct!.blocks.size;
    const before = aws.requests.length;
    // WHEN its onEvent is delivered again
    const again = await aws.drive(onEvent(request));
    // THEN it answers the same build and snapshot, having listed the blocks (several pages) and read some back
    expect(again.PhysicalResourceId).toBe(first.physicalId);
    expect(again.BuildState).toMatchObject({ SnapshotId: first.data.SnapshotId, Blocks: writtenBlocks });
    const later = aws.requests.slice(before);
    expect(later.filter((r) => r.action === 'ListSnapshotBlocks').length).toBe(Math.ceil(writtenBlocks / aws.world.settings.pageSize));
    expect(later.filter((r) => r.action === 'GetSnapshotBlock').length).toBe(Math.min(writtenBlocks, 16));
    expect(later.filter((r) => r.action === 'PutSnapshotBlock')).toEqual([]);
  });

  test.each([
    ['a block missing', (blocks: Map<number, { data: Buffer; checksum: string }>) => blocks.delete(Math.max(...blocks.keys()))],
    ['a block with other data', (blocks: Map<number, { data: Buffer; checksum: string }>) => {
      const index = Math.min(...blocks.keys());
      const data = Buffer.from(blocks.get(index)!.data);
      data[100] ^= 0xff;
      blocks.set(index, { data, checksum: blocks.get(index)!.checksum });
    }],
  ])('a repeated EBS-direct onEvent whose completed snapshot has %s fails, naming the snapshot', async (_what, tamper) => {
    // GIVEN a snapshot that an earlier attempt completed, then changed behind the handler's back
    const request = createEvent(ebsDirectProperties());
    const response = await aws.drive(onEvent(request));
    await aws.advance(5 * 60_000);
    tamper(aws.world.snapshots.get(response.BuildState.SnapshotId!)!.direct!.blocks);
    // WHEN the onEvent is delivered again
    const outcome = aws.drive(onEvent(request));
    // THEN it fails: the snapshot does not hold the image
    await expect(outcome).rejects.toThrow(new RegExp(`Snapshot ${response.BuildState.SnapshotId} of build ${response.PhysicalResourceId} is completed but does not hold the disk image`));
    expect(aws.handlerRequests('RegisterImage')).toEqual([]);
  });
});

test('the build record tag is one the handler role may never remove, and a tag-only update keeps it', async () => {
  // GIVEN a completed helper build
  const p1 = helperInstanceProperties();
  const build = await complete(createEvent(p1));
  const record = aws.tagsOf(build.data.ImageId)[BUILD_RECORD_TAG];
  expect(record).toMatch(/^v=1 outcome=complete /);
  // WHEN only its tags change
  await complete(updateEvent(build.physicalId, { ...p1, Tags: { owner: 'team-b' } }, p1));
  // THEN the record is still there, unchanged, beside the build id
  expect(aws.tagsOf(build.data.ImageId)).toMatchObject({ [BUILD_RECORD_TAG]: record, [BUILD_ID_TAG]: build.physicalId, owner: 'team-b' });
});

describe('item 4 (fault matrix): repetition and stale reads around a completed build', () => {
  test.each(STRATEGIES)('%s: a repeated isComplete after the build\'s own Delete deregistered its AMI registers none again and answers the same', async (strategy) => {
    // GIVEN a Create that completed, whose AMI is then deregistered (its snapshot not deleted yet),
    // as a rollback's Delete does while a concurrent execution of the Create still polls
    const first = await complete(createEvent(propertiesOf(strategy)));
    const image = aws.world.images.get(first.data.ImageId)!;
    image.state = 'deregistered';
    image.deregisteredAt = aws.clock.now();
    await aws.advance(60_000);
    aws.requests.length = 0;
    // WHEN the Create's isComplete is delivered again
    const again = await aws.drive(isComplete(first.event));
    // THEN it answers what the first answered, from the record on the snapshot, and registers nothing
    expect(again).toEqual({ IsComplete: true, Data: first.data });
    expect(aws.handlerRequests('RegisterImage')).toEqual([]);
  });

  test('helper-instance: a repeated onEvent keeps what the first delivery\'s rounds recorded in the progress object', async () => {
    // GIVEN a Create whose rounds have snapshotted the helper's volume
    const request = createEvent(propertiesOf('helper-instance'));
    const response = await aws.drive(onEvent(request));
    const event = isCompleteEvent(request, response);
    const progressOf = () => JSON.parse(aws.world.buckets.get(event.ResourceProperties.StagingBucket!)!.get(progressKey(response.PhysicalResourceId))?.body.toString() ?? '{}');
    for (let poll = 0; poll < 100 && !progressOf().snapshotIds; poll++) {
      await aws.drive(isComplete(event));
      await aws.advance(PROVIDER.queryIntervalMs);
    }
    const before = progressOf();
    expect(before.snapshotIds).toHaveLength(1);
    // WHEN the Create's onEvent is delivered again
    await aws.drive(onEvent(request));
    // THEN the progress still names the command and the snapshot, and the build completes with them
    expect(progressOf()).toMatchObject({ commandId: before.commandId, snapshotIds: before.snapshotIds, instanceId: before.instanceId });
    const { done } = await completeRequest(aws, request);
    expect(done.Data!.SnapshotId).toBe(before.snapshotIds[0]);
  });

  test.each(STRATEGIES)('%s: a Delete whose reads leave the build out for two minutes (stale-absent) still removes the AMI and snapshot', async (strategy) => {
    const first = await complete(createEvent(propertiesOf(strategy)));
    aws.injectFault({ kind: 'stale-absent', service: 'ec2', action: 'DescribeImages', phase: undefined, maxHits: 1 });
    const { done } = await completeRequest(aws, deleteEvent(first.physicalId, propertiesOf(strategy)));
    expect(done).toEqual({ IsComplete: true });
    expect(aws.world.images.get(first.data.ImageId)?.state ?? 'gone').not.toBe('available');
    await aws.advance(3600_000);
    expect(aws.world.snapshots.get(first.data.SnapshotId)).toBeUndefined();
    expect(findLeaks(aws, [])).toEqual([]);
  });

  test.each(STRATEGIES)('%s: a retaining Delete whose reads show the AMI pending (stale-state) keeps it', async (strategy) => {
    const first = await complete(createEvent(propertiesOf(strategy, { RemovalPolicy: 'retain' })));
    aws.injectFault({ kind: 'stale-state', service: 'ec2', action: 'DescribeImages', maxHits: 1 });
    const { done } = await completeRequest(aws, deleteEvent(first.physicalId, propertiesOf(strategy, { RemovalPolicy: 'retain' })));
    expect(done).toEqual({ IsComplete: true });
    expect(aws.handlerRequests('DeregisterImage')).toEqual([]);
    expect(imageState(aws, first.data.ImageId)).toEqual({ image: 'available', snapshot: 'completed' });
  });

  test.each(STRATEGIES)('%s: a rollback Update whose reads leave the old build out for two minutes returns the old build', async (strategy) => {
    const oldProps = propertiesOf(strategy);
    const newProps = propertiesOf(strategy, { KernelArgs: 'console=hvc0' });
    const first = await complete(createEvent(oldProps));
    const second = await complete(updateEvent(first.physicalId, newProps, oldProps));
    aws.injectFault({ kind: 'stale-absent', service: 'ec2', action: 'DescribeImages', maxHits: 1 });
    const rollback = await completeRequest(aws, updateEvent(second.physicalId, oldProps, newProps, 'rollback-request-1'));
    expect(rollback.response.PhysicalResourceId).toBe(first.physicalId);
    expect(aws.handlerRequests('RegisterImage')).toHaveLength(2);
  });
});
