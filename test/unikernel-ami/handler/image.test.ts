/**
 * The AMI and snapshot steps both strategies share (image.ts), each on the fake account, with the
 * answers EC2 gives that the lifecycle tests rarely meet: reads by id of what EC2 does not know
 * (yet), refusals that are not a NotFound (and the call they name), RegisterImage not knowing a
 * snapshot just seen completed or answering a duplicate name, an AMI or snapshot that failed (with
 * or without a reason), a built AMI the lookups leave out or lost, a tag update that meets
 * throttling, lag or a denial, AMIs and snapshots removed twice or held, and the marks that tell
 * which AMIs share a snapshot.
 */
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { PV_ROOT_DEVICE_NAME } from '../../../lib/pv-grub';
import { formatBuildRecord } from '../../../lib/unikernel-ami/handler/build-record';
import { runInvocation } from '../../../lib/unikernel-ami/handler/clock';
import { BuildFailure } from '../../../lib/unikernel-ami/handler/failure';
import {
  deleteSnapshot,
  deregisterImage,
  describeBuiltImage,
  describeImageById,
  describeOwn,
  describeOwnSnapshot,
  describeSnapshotById,
  ensureImage,
  findBuildByProperties,
  findBuildImages,
  findBuildSnapshots,
  imageUserOf,
  markImageUser,
  NOT_FOUND_GRACE_MS,
  otherImageUsing,
  retagImage,
  snapshotWait,
  timeOf,
} from '../../../lib/unikernel-ami/handler/image';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { buildTags, parseProperties, propertiesHash, resourceFilters } from '../../../lib/unikernel-ami/handler/properties';
import { BUILD_ID_TAG, BUILD_RECORD_TAG, IMAGE_USER_TAG_PREFIX, RETAINED_TAG } from '../../../lib/unikernel-ami/types';
import { ebsDirectProperties, LOGICAL_ID, REGION, STACK_ID, X86_64_AKI } from '../../fixtures/custom-resource';
import { awsError, FakeImage, FakeSnapshot, useFakeAws } from '../../fixtures/fake-aws';

process.env.AWS_REGION = REGION;
const { aws, logLines } = useFakeAws();
const ec2 = new EC2Client({ region: REGION });

const BUILD_ID = 'mua-00000000000000a1';
const PROPS = ebsDirectProperties();
const SPEC = parseProperties(PROPS);
const TAGS = buildTags({ buildId: BUILD_ID, stackId: STACK_ID, logicalId: LOGICAL_ID, propertiesHash: propertiesHash(PROPS) }, SPEC);
const OTHER_BUILD_ID = 'mua-00000000000000b2';
const HOUR_MS = 3_600_000;
/** The build's tags with another build id (another build of the same resource). */
const tagsOf = (buildId: string) => TAGS.map((tag) => (tag.Key === BUILD_ID_TAG ? { Key: BUILD_ID_TAG, Value: buildId } : tag));

const logged = (step: string) => logLines.map((line) => JSON.parse(line)).filter((line) => line.step === step);
const requests = (action: string) => aws.handlerRequests(action, { service: 'ec2' });
const refuse = (action: string, name: string, maxHits = 1) =>
  aws.injectFault({ kind: 'refuse', service: 'ec2', action, maxHits, error: () => awsError(name, `${name} (injected)`, { status: name === 'UnauthorizedOperation' ? 403 : 400 }) });

/** A snapshot of the build in the account, made `ageMs` ago and known to EC2 from `knownInMs` on (its lag). */
function addSnapshot(fields: Partial<FakeSnapshot> = {}, ageMs = HOUR_MS, knownInMs = 0): FakeSnapshot {
  const now = aws.clock.now();
  const snapshot: FakeSnapshot = {
    kind: 'snapshot', id: aws.world.nextId('snap'), createdAt: now - ageMs, byIdAt: now + knownInMs, byFilterAt: now + knownInMs,
    tags: [...TAGS], volumeSize: 1, encrypted: false, state: 'completed', ...fields,
  };
  aws.world.snapshots.set(snapshot.id, snapshot);
  return snapshot;
}

/** An AMI of the build registered an hour ago on `snapshotId`, as the handler registers it. */
function addImage(snapshotId: string, fields: Partial<FakeImage> = {}): FakeImage {
  const now = aws.clock.now();
  const image: FakeImage = {
    kind: 'image', id: aws.world.nextId('ami'), createdAt: now - HOUR_MS, byIdAt: now - HOUR_MS, byFilterAt: now - HOUR_MS,
    tags: [...TAGS], name: `${SPEC.imageNamePrefix}-${BUILD_ID}`, owner: 'self', architecture: 'x86_64', virtualizationType: 'paravirtual',
    kernelId: X86_64_AKI, rootDeviceName: PV_ROOT_DEVICE_NAME, blockDeviceMappings: [{ DeviceName: PV_ROOT_DEVICE_NAME, Ebs: { SnapshotId: snapshotId, VolumeSize: 1 } }],
    state: 'available', ...fields,
  };
  aws.world.images.set(image.id, image);
  return image;
}

const imageContext = () => ({ ec2, buildId: BUILD_ID, spec: SPEC, tags: TAGS, log: new StepLog(BUILD_ID) });
/** The error a call's refusal reaches CloudFormation as: the call's label, then EC2's message. */
const refusedAs = (label: string) => expect.objectContaining({ name: 'UnauthorizedOperation', message: `${label} failed: UnauthorizedOperation (injected)` });

describe('tag-filtered reads (findBuildSnapshots, findBuildImages)', () => {
  test('every page of the build\'s snapshots and AMIs, the account\'s own only, and no AMI deregistered', async () => {
    // GIVEN five snapshots and AMIs of the build (the fake's pages hold three), one AMI deregistered,
    // and a snapshot and an AMI of another build
    const snapshots = [1, 2, 3, 4, 5].map(() => addSnapshot());
    const images = snapshots.map((snapshot) => addImage(snapshot.id));
    images[2].state = 'deregistered';
    images[2].deregisteredAt = aws.clock.now();
    const other = addSnapshot({ tags: tagsOf(OTHER_BUILD_ID) });
    addImage(other.id, { tags: tagsOf(OTHER_BUILD_ID) });
    // THEN
    expect((await aws.drive(findBuildSnapshots(ec2, BUILD_ID))).map((s) => s.SnapshotId)).toEqual(snapshots.map((s) => s.id));
    expect((await aws.drive(findBuildImages(ec2, BUILD_ID))).map((i) => i.ImageId)).toEqual(images.filter((i) => i !== images[2]).map((i) => i.id));
    const filters = [{ Name: `tag:${BUILD_ID_TAG}`, Values: [BUILD_ID] }];
    expect(requests('DescribeSnapshots').map((r) => r.input)).toEqual([
      { OwnerIds: ['self'], Filters: filters, MaxResults: 100, NextToken: undefined },
      { OwnerIds: ['self'], Filters: filters, MaxResults: 100, NextToken: 'fake-page-3' },
    ]);
    expect(requests('DescribeImages').map((r) => r.input)).toEqual([
      { Owners: ['self'], Filters: filters, MaxResults: 100, NextToken: undefined },
      { Owners: ['self'], Filters: filters, MaxResults: 100, NextToken: 'fake-page-3' },
    ]);
  });

  test('a refusal names the call', async () => {
    refuse('DescribeSnapshots', 'UnauthorizedOperation');
    refuse('DescribeImages', 'UnauthorizedOperation');
    await expect(aws.drive(findBuildSnapshots(ec2, BUILD_ID))).rejects.toEqual(refusedAs('ec2:DescribeSnapshots'));
    await expect(aws.drive(findBuildImages(ec2, BUILD_ID))).rejects.toEqual(refusedAs('ec2:DescribeImages'));
  });
});

describe('reads by id', () => {
  test('an AMI or snapshot EC2 does not know (yet) reads as undefined', async () => {
    // GIVEN an AMI and a snapshot made a moment ago, which calls naming their ids do not see yet
    const snapshot = addSnapshot({}, 0, 10_000);
    const image = addImage(snapshot.id, { byIdAt: aws.clock.now() + 10_000 });
    // THEN
    await expect(aws.drive(describeSnapshotById(ec2, snapshot.id))).resolves.toBeUndefined();
    await expect(aws.drive(describeImageById(ec2, image.id))).resolves.toBeUndefined();
    expect(requests('DescribeSnapshots').map((r) => r.error)).toEqual(['InvalidSnapshot.NotFound']);
    // and once EC2 knows them, they are read
    await aws.advance(10_000);
    await expect(aws.drive(describeSnapshotById(ec2, snapshot.id))).resolves.toMatchObject({ SnapshotId: snapshot.id, State: 'completed' });
    await expect(aws.drive(describeImageById(ec2, image.id))).resolves.toMatchObject({ ImageId: image.id, State: 'available' });
  });

  test('a refusal other than NotFound is passed on, not read as "no such AMI or snapshot"', async () => {
    // A denied read must not look like a deleted resource: the cleanup would decide on it.
    const snapshot = addSnapshot();
    const image = addImage(snapshot.id);
    refuse('DescribeSnapshots', 'UnauthorizedOperation');
    refuse('DescribeImages', 'UnauthorizedOperation');
    await expect(aws.drive(describeSnapshotById(ec2, snapshot.id))).rejects.toEqual(refusedAs('ec2:DescribeSnapshots'));
    await expect(aws.drive(describeImageById(ec2, image.id))).rejects.toEqual(refusedAs('ec2:DescribeImages'));
  });

  test('the read is of the id asked for, and its time is EC2\'s', async () => {
    const [first, second] = [addSnapshot({}, 2 * HOUR_MS), addSnapshot()];
    const [image] = [addImage(first.id), addImage(second.id)];
    const read = (await aws.drive(describeSnapshotById(ec2, second.id)))!;
    expect(read.SnapshotId).toBe(second.id);
    expect(timeOf(read.StartTime)).toBe(second.createdAt);
    expect(timeOf(undefined)).toBeUndefined();
    expect((await aws.drive(describeImageById(ec2, image.id)))?.ImageId).toBe(image.id);
  });
});

describe('the build\'s own snapshot (describeOwnSnapshot)', () => {
  test('unknown to EC2 while young: not there yet; unknown for the grace (five minutes): a failure that says so', async () => {
    const young = addSnapshot({}, 0, 10 * 60_000);
    await expect(aws.drive(describeOwnSnapshot(ec2, young.id, BUILD_ID, aws.clock.now() - NOT_FOUND_GRACE_MS + 1))).resolves.toBeUndefined();
    const createdAt = aws.clock.now() - NOT_FOUND_GRACE_MS;
    await expect(aws.drive(describeOwnSnapshot(ec2, young.id, BUILD_ID, createdAt))).rejects.toThrow(new BuildFailure(
      `Snapshot ${young.id} of build ${BUILD_ID} is not found: EC2 has not known it for 5 minutes `
      + '(was it deleted outside CloudFormation?). Redeploy to start a new build.',
    ));
  });

  test('a snapshot EC2 knows is read by its id, however old', async () => {
    const [first, second] = [addSnapshot(), addSnapshot()];
    expect((await aws.drive(describeOwnSnapshot(ec2, second.id, BUILD_ID, second.createdAt)))?.SnapshotId).toBe(second.id);
    expect((await aws.drive(describeOwnSnapshot(ec2, first.id, BUILD_ID, aws.clock.now())))?.SnapshotId).toBe(first.id);
  });

  test('a read that answers nothing (a filter, not an id) counts as unknown: not there yet while young, then gone', async () => {
    const unknown = 'snap-0123456789abcdef0';
    const read = async () => (await ec2.send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: [unknown] }] }))).Snapshots?.[0];
    const gone = () => new BuildFailure(`${unknown} is gone`);
    await expect(aws.drive(describeOwn('ec2:DescribeSnapshots', read, aws.clock.now(), gone))).resolves.toBeUndefined();
    await expect(aws.drive(describeOwn('ec2:DescribeSnapshots', read, aws.clock.now() - HOUR_MS, gone))).rejects.toThrow(gone());
  });

  test('a refusal other than NotFound is passed on, whatever the snapshot\'s age', async () => {
    const snapshot = addSnapshot({}, 0);
    refuse('DescribeSnapshots', 'UnauthorizedOperation');
    await expect(aws.drive(describeOwnSnapshot(ec2, snapshot.id, BUILD_ID, aws.clock.now()))).rejects.toEqual(refusedAs('ec2:DescribeSnapshots'));
  });
});

describe('what a build waits for on its snapshot (snapshotWait)', () => {
  test('a failed snapshot is a failure with EC2\'s reason, without its final period', async () => {
    const snapshot = addSnapshot({ state: 'error', stateMessage: 'Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state.' });
    const read = (await aws.drive(describeSnapshotById(ec2, snapshot.id)))!;
    expect(() => snapshotWait(read)).toThrow(new BuildFailure(
      `Snapshot ${snapshot.id} failed: Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state. Redeploy to start a new build.`,
    ));
  });

  test('a failed snapshot without a StateMessage (DescribeSnapshots does not always give one) says that no reason was given', async () => {
    const snapshot = addSnapshot({ state: 'error' });
    const read = (await aws.drive(describeSnapshotById(ec2, snapshot.id)))!;
    expect(read.StateMessage).toBeUndefined();
    expect(() => snapshotWait(read)).toThrow(new BuildFailure(`Snapshot ${snapshot.id} failed: no reason given. Redeploy to start a new build.`));
  });

  test('a pending snapshot is waited for with its progress, "pending" while EC2 gives none; a completed one is not', async () => {
    // The wait text goes to the 'wait' log line and, at the deadline, to CloudFormation.
    expect(snapshotWait({ SnapshotId: 'snap-0123456789abcdef0', State: 'pending', Progress: '45%' })).toBe('snapshot snap-0123456789abcdef0 to complete (45%)');
    expect(snapshotWait({ SnapshotId: 'snap-0123456789abcdef0', State: 'pending', Progress: '' })).toBe('snapshot snap-0123456789abcdef0 to complete (pending)');
    expect(snapshotWait({ SnapshotId: 'snap-0123456789abcdef0', State: 'pending' })).toBe('snapshot snap-0123456789abcdef0 to complete (pending)');
    expect(snapshotWait({ SnapshotId: 'snap-0123456789abcdef0', State: 'completed', Progress: '100%' })).toBeUndefined();
  });
});

describe('registering the build\'s AMI (ensureImage)', () => {
  const NAME = `hello-${BUILD_ID}`;

  test('no AMI of the build yet: it is registered from the snapshot, paravirtual with the PV-GRUB kernel, tagged as the build\'s', async () => {
    // GIVEN the build's completed snapshot, no record of it elsewhere, and an AMI of another build
    const snapshot = addSnapshot();
    addImage(addSnapshot({ tags: tagsOf(OTHER_BUILD_ID) }).id, { tags: tagsOf(OTHER_BUILD_ID), name: `hello-${OTHER_BUILD_ID}` });
    // WHEN
    const progress = await aws.drive(ensureImage(imageContext(), snapshot.id, undefined, async () => undefined));
    // THEN
    expect(progress).toEqual({ status: 'pending', imageId: expect.stringMatching(/^ami-/) });
    const imageId = (progress as { imageId: string }).imageId;
    expect(aws.world.images.get(imageId)).toMatchObject({
      name: NAME,
      description: `hello unikernel booted by PV-GRUB (mirage-unikernel-ami build ${BUILD_ID})`,
      virtualizationType: 'paravirtual',
      architecture: 'x86_64',
      kernelId: X86_64_AKI,
      rootDeviceName: PV_ROOT_DEVICE_NAME,
      blockDeviceMappings: [{ DeviceName: PV_ROOT_DEVICE_NAME, Ebs: { SnapshotId: snapshot.id, DeleteOnTermination: true, VolumeType: 'gp2', VolumeSize: 1 } }],
      tags: TAGS,
    });
    expect(logged('register-image')).toEqual([expect.objectContaining({ imageId, snapshotId: snapshot.id })]);
    expect(logged('stage')).toEqual([expect.objectContaining({ stage: 'image-registered', imageId, snapshotId: snapshot.id })]);
  });

  test('ImageDescription, when given, is the AMI\'s description', async () => {
    const snapshot = addSnapshot();
    const spec = parseProperties(ebsDirectProperties({ ImageDescription: 'The hello unikernel' }));
    const progress = await aws.drive(ensureImage({ ...imageContext(), spec }, snapshot.id));
    expect(aws.world.images.get((progress as { imageId: string }).imageId)?.description).toBe('The hello unikernel');
  });

  test.each(['available', 'pending'] as const)('an AMI of the build is listed (%s): its progress, and nothing registered', async (state) => {
    const snapshot = addSnapshot();
    const image = addImage(snapshot.id, { state });
    await expect(aws.drive(ensureImage(imageContext(), snapshot.id))).resolves.toEqual({ status: state, imageId: image.id });
    expect(requests('RegisterImage')).toEqual([]);
  });

  test('an AMI the tag-filtered read leaves out (EC2\'s lag) is found by its name, and not registered again', async () => {
    const snapshot = addSnapshot();
    const image = addImage(snapshot.id);
    aws.configure({ staleFilteredReads: [{ id: image.id, reads: 1 }] });
    await expect(aws.drive(ensureImage(imageContext(), snapshot.id))).resolves.toEqual({ status: 'available', imageId: image.id });
    expect(requests('DescribeImages').map((r) => r.input.Filters)).toEqual([[{ Name: `tag:${BUILD_ID_TAG}`, Values: [BUILD_ID] }], [{ Name: 'name', Values: [NAME] }]]);
    expect(requests('RegisterImage')).toEqual([]);
  });

  test('an AMI an earlier round registered that no read lists yet (InvalidAMIName.Duplicate): the build waits for it', async () => {
    const snapshot = addSnapshot();
    addImage(snapshot.id, { byIdAt: aws.clock.now() + 10_000, byFilterAt: aws.clock.now() + 10_000 });
    await expect(aws.drive(ensureImage(imageContext(), snapshot.id))).resolves.toEqual({ status: 'registering' });
    expect(requests('RegisterImage').map((r) => r.error)).toEqual(['InvalidAMIName.Duplicate']);
    expect(logged('wait-image-visible')).toEqual([expect.objectContaining({ name: NAME })]);
  });

  test('no AMI listed, but another delivery recorded the build complete: its answer, and nothing registered', async () => {
    const snapshot = addSnapshot();
    const attributes = { ImageId: 'ami-0123456789abcdef0', SnapshotId: snapshot.id, KernelId: X86_64_AKI, ImageName: NAME };
    await expect(aws.drive(ensureImage(imageContext(), snapshot.id, undefined, async (id) => (id === snapshot.id ? attributes : undefined))))
      .resolves.toEqual({ status: 'recorded', attributes });
    expect(requests('RegisterImage')).toEqual([]);
    expect(logged('image-recorded-elsewhere')).toEqual([expect.objectContaining(attributes)]);
  });

  test('a refusal of RegisterImage fails the build with it', async () => {
    const snapshot = addSnapshot();
    refuse('RegisterImage', 'UnauthorizedOperation');
    await expect(aws.drive(ensureImage(imageContext(), snapshot.id))).rejects.toEqual(refusedAs('ec2:RegisterImage'));
  });

  test('RegisterImage does not know the snapshot just seen completed: the build waits, and registers once EC2 knows it', async () => {
    // GIVEN a completed snapshot that EC2's RegisterImage does not know for 30 more seconds
    const snapshot = addSnapshot({}, 60_000, 30_000);
    // WHEN
    const first = await aws.drive(ensureImage(imageContext(), snapshot.id));
    // THEN nothing is registered, the build waits, and the log line says for what
    expect(first).toEqual({ status: 'registering' });
    expect(requests('RegisterImage').map((r) => r.error)).toEqual(['InvalidSnapshot.NotFound']);
    expect(aws.world.images.size).toBe(3);
    expect(logged('wait-snapshot-visible-to-register')).toEqual([expect.objectContaining({ buildId: BUILD_ID, snapshotId: snapshot.id })]);
    // WHEN EC2 knows it
    await aws.advance(30_000);
    const second = await aws.drive(ensureImage(imageContext(), snapshot.id));
    // THEN the AMI is registered on it
    expect(second).toEqual({ status: 'pending', imageId: expect.stringMatching(/^ami-/) });
    const registered = aws.world.images.get((second as { imageId: string }).imageId)!;
    expect(registered.blockDeviceMappings[0].Ebs?.SnapshotId).toBe(snapshot.id);
  });

  test('the build\'s AMI failed: a failure that names it, its state and EC2\'s reason', async () => {
    const snapshot = addSnapshot();
    const image = addImage(snapshot.id, { state: 'failed', stateReason: { Code: 'Server.InternalError', Message: 'Server.InternalError: Internal error on launch' } });
    await expect(aws.drive(ensureImage(imageContext(), snapshot.id))).rejects.toThrow(new BuildFailure(
      `AMI ${image.id} is failed: Server.InternalError: Internal error on launch. Redeploy to start a new build.`,
    ));
    expect(requests('RegisterImage')).toEqual([]);
  });

  test('the build\'s AMI in a state without a StateReason: the failure says that no reason was given', async () => {
    // DescribeImages documents StateReason as optional.
    const snapshot = addSnapshot();
    const image = addImage(snapshot.id, { state: 'failed' });
    await expect(aws.drive(ensureImage(imageContext(), snapshot.id))).rejects.toThrow(new BuildFailure(
      `AMI ${image.id} is failed: no reason given. Redeploy to start a new build.`,
    ));
  });
});

describe('the AMI of a finished build (describeBuiltImage)', () => {
  const gone = new BuildFailure(`The AMI of build ${BUILD_ID} is gone (deregistered outside CloudFormation?). Change the kernel or Name to build a new one.`);
  const lookupTimes = () => requests('DescribeImages').map((r) => r.time! - requests('DescribeImages')[0].time!);

  test('its attributes: the available AMI, its root snapshot, kernel and name', async () => {
    const snapshot = addSnapshot();
    const image = addImage(snapshot.id);
    await expect(aws.drive(describeBuiltImage(ec2, BUILD_ID))).resolves.toEqual({
      attributes: { ImageId: image.id, SnapshotId: snapshot.id, KernelId: X86_64_AKI, ImageName: `hello-${BUILD_ID}` },
      image: expect.objectContaining({ ImageId: image.id }),
    });
  });

  test('an AMI the tag lookups leave out for a while (it finished moments ago) is looked for again', async () => {
    const snapshot = addSnapshot();
    const image = addImage(snapshot.id, { byFilterAt: aws.clock.now() + 15_000 });
    await expect(aws.drive(describeBuiltImage(ec2, BUILD_ID))).resolves.toMatchObject({ attributes: { ImageId: image.id, SnapshotId: snapshot.id } });
    expect(lookupTimes()).toEqual([0, 10_000, 30_000]);
  });

  test.each([
    ['no AMI', () => undefined],
    ['only a pending AMI', () => addImage(addSnapshot().id, { state: 'pending' })],
  ])('%s: after two minutes of lookups, a failure that says the AMI is gone', async (_, given) => {
    given();
    await expect(aws.drive(describeBuiltImage(ec2, BUILD_ID))).rejects.toThrow(gone);
    expect(lookupTimes()).toEqual([0, 10_000, 30_000, 60_000, 120_000]);
  });

  test('an invocation with no more time left than the next wait fails at once rather than be cut off', async () => {
    // 30 s in all: after the first wait (10 s), the second (20 s) would end at the deadline
    await expect(aws.drive(runInvocation(undefined, 30_000, 0, () => describeBuiltImage(ec2, BUILD_ID)))).rejects.toThrow(gone);
    expect(lookupTimes()).toEqual([0, 10_000]);
  });
});

describe('a finished build of the same properties (findBuildByProperties)', () => {
  const hash = propertiesHash(PROPS);
  const filters = resourceFilters(STACK_ID, LOGICAL_ID);

  test('the build whose AMI is available and not retained', async () => {
    // GIVEN builds of the resource with these properties: one pending, one retained, one available
    const withBuild = (buildId: string, extra: { Key: string; Value: string }[] = []) => [...tagsOf(buildId), ...extra];
    addImage(addSnapshot().id, { state: 'pending', tags: withBuild('mua-00000000000000c3') });
    addImage(addSnapshot().id, { tags: withBuild('mua-00000000000000c4', [{ Key: RETAINED_TAG, Value: 'true' }]) });
    expect(await aws.drive(findBuildByProperties(ec2, filters, hash))).toBeUndefined();
    addImage(addSnapshot().id, { tags: withBuild(OTHER_BUILD_ID) });
    // THEN
    expect(await aws.drive(findBuildByProperties(ec2, filters, hash))).toBe(OTHER_BUILD_ID);
    expect(await aws.drive(findBuildByProperties(ec2, filters, 'another-hash'))).toBeUndefined();
  });
});

describe('updating the tags of a built AMI and its snapshot (retagImage)', () => {
  const NEW_TAGS = TAGS.map((tag) => (tag.Key === 'project' ? { Key: 'project', Value: 'renamed' } : tag));

  async function builtImage() {
    const snapshot = addSnapshot();
    addImage(snapshot.id);
    const { attributes, image } = await aws.drive(describeBuiltImage(ec2, BUILD_ID));
    return { attributes, image, snapshot };
  }

  test.each(['RequestLimitExceeded', 'InvalidAMIID.NotFound'])('CreateTags answered %s twice: retried, and the new tags are on the AMI and its snapshot', async (name) => {
    // Throttling, and a NotFound for the AMI just listed (EC2's lag), are worth waiting out.
    const { attributes, image, snapshot } = await builtImage();
    refuse('CreateTags', name, 2);
    await aws.drive(retagImage(ec2, image, attributes.SnapshotId, NEW_TAGS));
    expect(requests('CreateTags').map((r) => r.error)).toEqual([name, name, undefined]);
    expect(aws.tagsOf(attributes.ImageId).project).toBe('renamed');
    expect(aws.tagsOf(snapshot.id).project).toBe('renamed');
    // no user tag to remove: no DeleteTags (one without tags would remove every user tag)
    expect(requests('DeleteTags')).toEqual([]);
  });

  test('user tags the new set lacks are removed from the AMI and its snapshot; the build\'s own tags stay', async () => {
    // GIVEN a built AMI and snapshot with a user tag `owner` and the build's record
    const extra = [{ Key: 'owner', Value: 'team-a' }, { Key: BUILD_RECORD_TAG, Value: 'v=1 outcome=complete started=1' }];
    const snapshot = addSnapshot({ tags: [...TAGS, ...extra] });
    const added = addImage(snapshot.id, { tags: [...TAGS, ...extra] });
    const { attributes, image } = await aws.drive(describeBuiltImage(ec2, BUILD_ID));
    // WHEN the new tag set has no `owner`
    const removed = await aws.drive(retagImage(ec2, image, attributes.SnapshotId, NEW_TAGS));
    // THEN
    expect(removed).toEqual(['owner']);
    expect(requests('DeleteTags').map((r) => r.input)).toEqual([{ Resources: [added.id, snapshot.id], Tags: [{ Key: 'owner' }] }]);
    for (const id of [added.id, snapshot.id]) {
      expect(aws.tagsOf(id)).toEqual({ ...Object.fromEntries(NEW_TAGS.map((tag) => [tag.Key, tag.Value])), [BUILD_RECORD_TAG]: 'v=1 outcome=complete started=1' });
    }
  });

  test('DeleteTags denied fails with the call named', async () => {
    const snapshot = addSnapshot();
    addImage(snapshot.id, { tags: [...TAGS, { Key: 'owner', Value: 'team-a' }] });
    const { attributes, image } = await aws.drive(describeBuiltImage(ec2, BUILD_ID));
    refuse('DeleteTags', 'UnauthorizedOperation');
    await expect(aws.drive(retagImage(ec2, image, attributes.SnapshotId, NEW_TAGS))).rejects.toEqual(refusedAs('ec2:DeleteTags'));
  });

  test('CreateTags denied on an AMI whose tags did not just change: the denial fails at once (a policy is missing)', async () => {
    const { attributes, image } = await builtImage();
    refuse('CreateTags', 'UnauthorizedOperation', Infinity);
    await expect(aws.drive(retagImage(ec2, image, attributes.SnapshotId, NEW_TAGS))).rejects.toEqual(refusedAs('ec2:CreateTags'));
    expect(requests('CreateTags')).toHaveLength(1);
  });

  test('CreateTags denied right after the handler migrated the AMI\'s tags (IAM may not see them yet): retried', async () => {
    const { attributes, image } = await builtImage();
    refuse('CreateTags', 'UnauthorizedOperation', 2);
    await aws.drive(retagImage(ec2, image, attributes.SnapshotId, NEW_TAGS, aws.clock.now()));
    expect(requests('CreateTags').map((r) => r.error)).toEqual(['UnauthorizedOperation', 'UnauthorizedOperation', undefined]);
    expect(aws.tagsOf(attributes.ImageId).project).toBe('renamed');
  });
});

describe('removing AMIs (deregisterImage)', () => {
  test('an AMI already deregistered (InvalidAMIID.Unavailable, as a repeated Delete meets it) counts as gone', async () => {
    const image = addImage(addSnapshot().id);
    await expect(aws.drive(deregisterImage(ec2, image.id))).resolves.toBe(true);
    await expect(aws.drive(deregisterImage(ec2, image.id))).resolves.toBe(true);
    expect(requests('DeregisterImage').map((r) => r.error)).toEqual([undefined, 'InvalidAMIID.Unavailable']);
  });

  test('an AMI EC2 does not know: gone, unless it was registered so recently that EC2 may not know it yet', async () => {
    const unknown = 'ami-0123456789abcdef0';
    await expect(aws.drive(deregisterImage(ec2, unknown))).resolves.toBe(true);
    await expect(aws.drive(deregisterImage(ec2, unknown, aws.clock.now() - HOUR_MS))).resolves.toBe(true);
    await expect(aws.drive(deregisterImage(ec2, unknown, aws.clock.now() - 60_000))).resolves.toBe(false);
  });

  test('a refusal fails with the call named', async () => {
    const image = addImage(addSnapshot().id);
    refuse('DeregisterImage', 'UnauthorizedOperation');
    await expect(aws.drive(deregisterImage(ec2, image.id))).rejects.toEqual(refusedAs('ec2:DeregisterImage'));
    expect(aws.world.images.get(image.id)?.state).toBe('available');
  });
});

describe('removing snapshots (deleteSnapshot)', () => {
  test('a snapshot no AMI uses is deleted; one an AMI uses (InvalidSnapshot.InUse) is not gone yet', async () => {
    const [free, used] = [addSnapshot(), addSnapshot()];
    addImage(used.id);
    await expect(aws.drive(deleteSnapshot(ec2, free.id))).resolves.toBe(true);
    await expect(aws.drive(deleteSnapshot(ec2, used.id))).resolves.toBe(false);
    expect([...aws.world.snapshots.keys()]).toEqual([used.id]);
    expect(requests('DeleteSnapshot').map((r) => [r.input.SnapshotId, r.error])).toEqual([[free.id, undefined], [used.id, 'InvalidSnapshot.InUse']]);
  });

  test('a refusal fails with the call named', async () => {
    const snapshot = addSnapshot();
    refuse('DeleteSnapshot', 'UnauthorizedOperation');
    await expect(aws.drive(deleteSnapshot(ec2, snapshot.id))).rejects.toEqual(refusedAs('ec2:DeleteSnapshot'));
  });
});

describe('the AMI a rename registered on a snapshot (imageUserOf)', () => {
  const userTag = (value: string) => [{ Key: 'project', Value: 'hello' }, { Key: `${IMAGE_USER_TAG_PREFIX}${BUILD_ID}`, Value: value }];

  test('the tag of this build naming one AMI id gives that AMI', () => {
    expect(imageUserOf(userTag('ami-0123456789abcdef0'), BUILD_ID)).toBe('ami-0123456789abcdef0');
  });

  test.each(['xami-0123456789abcdef0', 'ami-0123456789abcdef0 ami-0fedcba9876543210', 'ami-', 'ami-0123456789abcdefg', ''])(
    'a tag value that is not one AMI id (%j, edited by hand) names none', (value) => {
      expect(imageUserOf(userTag(value), BUILD_ID)).toBeUndefined();
    });

  test('the tag of another build, or none, names none', () => {
    expect(imageUserOf(userTag('ami-0123456789abcdef0'), 'mua-00000000000000b2')).toBeUndefined();
    expect(imageUserOf(undefined, BUILD_ID)).toBeUndefined();
  });
});

describe('another AMI on a snapshot a build is about to delete (markImageUser, otherImageUsing)', () => {
  // GIVEN build W (OTHER_BUILD_ID) wrote snapshot S and recorded its AMI A on it; a rename, build R
  // (BUILD_ID), registered AMI B on S and marked S as used by B
  async function sharedSnapshot(b: Partial<FakeImage> = {}) {
    const s = addSnapshot({ tags: tagsOf(OTHER_BUILD_ID) });
    const a = addImage(s.id, { tags: tagsOf(OTHER_BUILD_ID) });
    const record = formatBuildRecord({ version: 1, outcome: 'complete', startedAt: aws.clock.now() - HOUR_MS, stages: [], imageId: a.id, snapshotId: s.id });
    s.tags.push({ Key: BUILD_RECORD_TAG, Value: record });
    const bImage = addImage(s.id, b);
    await aws.drive(markImageUser(ec2, s.id, BUILD_ID, bImage.id));
    return { s, a, b: bImage };
  }

  test('the rename\'s mark names its AMI, on the snapshot only', async () => {
    const { s, b } = await sharedSnapshot();
    expect(imageUserOf((await aws.drive(describeSnapshotById(ec2, s.id)))?.Tags, BUILD_ID)).toBe(b.id);
    expect(requests('CreateTags').map((r) => r.input)).toEqual([{ Resources: [s.id], Tags: [{ Key: `${IMAGE_USER_TAG_PREFIX}${BUILD_ID}`, Value: b.id }] }]);
  });

  test('for the rename, the AMI the writer recorded; for the writer, the rename\'s AMI', async () => {
    const { s, a, b } = await sharedSnapshot();
    await expect(aws.drive(otherImageUsing(ec2, s.id, BUILD_ID))).resolves.toBe(a.id);
    await expect(aws.drive(otherImageUsing(ec2, s.id, OTHER_BUILD_ID))).resolves.toBe(b.id);
  });

  test('for the rename, its own AMI (its own mark) is no other AMI', async () => {
    const { s, a } = await sharedSnapshot();
    a.state = 'deregistered';
    await expect(aws.drive(otherImageUsing(ec2, s.id, BUILD_ID))).resolves.toBeUndefined();
  });

  test.each([
    ['deregistered', { state: 'deregistered' }],
    ['failed', { state: 'failed' }],
    ['unknown to EC2 by its id', { byIdAt: Infinity }],
    ['registered on another snapshot', { blockDeviceMappings: [{ DeviceName: PV_ROOT_DEVICE_NAME, Ebs: { SnapshotId: 'snap-0ffffffffffffffff' } }] }],
  ] as [string, Partial<FakeImage>][])('an AMI %s does not use the snapshot', async (_, b) => {
    const { s } = await sharedSnapshot(b);
    await expect(aws.drive(otherImageUsing(ec2, s.id, OTHER_BUILD_ID))).resolves.toBeUndefined();
  });

  test('a mark whose value is not one AMI id (edited by hand), or a user tag naming an AMI, names none', async () => {
    const marks = ['xami-0123456789abcdef0', 'ami-0123456789abcdef0 x', 'ami-'].map((value, n) => ({ Key: `${IMAGE_USER_TAG_PREFIX}mua-00000000000000d${n}`, Value: value }));
    // and a user tag naming an AMI, which is no mark either
    const s = addSnapshot({ tags: [...tagsOf(OTHER_BUILD_ID), ...marks, { Key: 'base-ami', Value: 'ami-0123456789abcdef0' }] });
    await expect(aws.drive(otherImageUsing(ec2, s.id, OTHER_BUILD_ID))).resolves.toBeUndefined();
    expect(requests('DescribeImages')).toEqual([]);
  });

  test('a snapshot EC2 does not know has no AMI on it', async () => {
    await expect(aws.drive(otherImageUsing(ec2, 'snap-0123456789abcdef0', BUILD_ID))).resolves.toBeUndefined();
  });

  test('a refusal of the mark fails with the call named', async () => {
    const s = addSnapshot();
    refuse('CreateTags', 'UnauthorizedOperation');
    await expect(aws.drive(markImageUser(ec2, s.id, BUILD_ID, 'ami-0123456789abcdef0'))).rejects.toEqual(refusedAs('ec2:CreateTags image-user'));
  });
});
