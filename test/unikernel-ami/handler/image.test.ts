/**
 * The AMI and snapshot steps both strategies share (image.ts), each on the fake account with the
 * answers EC2 gives that the lifecycle tests rarely meet: a read by id of something EC2 does not
 * know (yet), a refusal that is not a NotFound, RegisterImage not knowing a snapshot just seen
 * completed, an AMI or snapshot that failed (with or without a reason), a tag update that meets
 * throttling, lag or a denial, an AMI deregistered twice, and the tag naming a rename's AMI.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { BuildFailure } from '../../../lib/unikernel-ami/handler/failure';
import {
  deregisterImage,
  describeBuiltImage,
  describeImageById,
  describeOwnSnapshot,
  describeSnapshotById,
  ensureImage,
  imageUserOf,
  NOT_FOUND_GRACE_MS,
  retagImage,
  snapshotWait,
} from '../../../lib/unikernel-ami/handler/image';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { buildTags, parseProperties, propertiesHash } from '../../../lib/unikernel-ami/handler/properties';
import { IMAGE_USER_TAG_PREFIX } from '../../../lib/unikernel-ami/types';
import { ebsDirectProperties, LOGICAL_ID, REGION, STACK_ID, X86_64_AKI } from '../../fixtures/custom-resource';
import { awsError, FakeImage, FakeSnapshot, useFakeAws } from '../../fixtures/fake-aws';

process.env.AWS_REGION = REGION;
const { aws, logLines } = useFakeAws();
const ec2 = new EC2Client({ region: REGION });

const BUILD_ID = 'mua-00000000000000a1';
const PROPS = ebsDirectProperties();
const SPEC = parseProperties(PROPS);
const TAGS = buildTags({ buildId: BUILD_ID, stackId: STACK_ID, logicalId: LOGICAL_ID, propertiesHash: propertiesHash(PROPS) }, SPEC);
const ROOT_DEVICE = '/dev/sda1';
const HOUR_MS = 3_600_000;

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
    kernelId: X86_64_AKI, rootDeviceName: ROOT_DEVICE, blockDeviceMappings: [{ DeviceName: ROOT_DEVICE, Ebs: { SnapshotId: snapshotId, VolumeSize: 1 } }],
    state: 'available', ...fields,
  };
  aws.world.images.set(image.id, image);
  return image;
}

const imageContext = () => ({ ec2, buildId: BUILD_ID, spec: SPEC, tags: TAGS, log: new StepLog(BUILD_ID) });

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
    await expect(aws.drive(describeSnapshotById(ec2, snapshot.id))).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    await expect(aws.drive(describeImageById(ec2, image.id))).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
  });
});

describe('the build\'s own snapshot (describeOwnSnapshot)', () => {
  test('unknown to EC2 while young: not there yet; unknown for longer than the grace: a failure that says so', async () => {
    const young = addSnapshot({}, 0, 10 * 60_000);
    await expect(aws.drive(describeOwnSnapshot(ec2, young.id, BUILD_ID, aws.clock.now()))).resolves.toBeUndefined();
    const createdAt = aws.clock.now() - NOT_FOUND_GRACE_MS - 60_000;
    await expect(aws.drive(describeOwnSnapshot(ec2, young.id, BUILD_ID, createdAt))).rejects.toThrow(new BuildFailure(
      `Snapshot ${young.id} of build ${BUILD_ID} is not found: EC2 has not known it for 6 minutes `
      + '(was it deleted outside CloudFormation?). Redeploy to start a new build.',
    ));
  });

  test('a refusal other than NotFound is passed on, whatever the snapshot\'s age', async () => {
    const snapshot = addSnapshot({}, 0);
    refuse('DescribeSnapshots', 'UnauthorizedOperation');
    await expect(aws.drive(describeOwnSnapshot(ec2, snapshot.id, BUILD_ID, aws.clock.now()))).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
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
  });

  test('CreateTags denied on an AMI whose tags did not just change: the denial fails at once (a policy is missing)', async () => {
    const { attributes, image } = await builtImage();
    refuse('CreateTags', 'UnauthorizedOperation', Infinity);
    await expect(aws.drive(retagImage(ec2, image, attributes.SnapshotId, NEW_TAGS))).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
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
