/**
 * What a cleanup may remove, each decided on a read by id (cleanup.ts): reasonToKeep for every
 * remover and the one-hour boundary of a sweep; one removal pass's AMIs and snapshots (the retained
 * AMI, a kept AMI's snapshot, deregistration protection, the failed record, an AMI EC2 does not know
 * by id, a snapshot recorded complete or used by another build's AMI); the progress and staged
 * objects of a helper build whose staging bucket is gone; the passes and waits of removeBuild; and
 * the sweep of a resource's failed builds. On the strict fake account, on simulated time: the AMIs
 * and snapshots are put in the account as earlier builds left them.
 */
import { EC2Client, Image, RunInstancesCommand, Tag } from '@aws-sdk/client-ec2';
import { formatBuildRecord } from '../../../lib/unikernel-ami/handler/build-record';
import {
  BuildToRemove, describeLeftovers, failedBuild, findFailedBuilds, isFinishedBuild, Leftover, PassFindings, reasonToKeep, removeBuild, removeBuildPass, sweepFailedBuilds, SWEEP_PROOF_AGE_MS,
} from '../../../lib/unikernel-ami/handler/cleanup';
import { runInvocation } from '../../../lib/unikernel-ami/handler/clock';
import { progressKey } from '../../../lib/unikernel-ami/handler/progress';
import { stagingKeys } from '../../../lib/unikernel-ami/handler/staging';
import { clients } from '../../../lib/unikernel-ami/handler/clients';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { BUILD_ID_TAG, BUILD_RECORD_TAG, IMAGE_USER_TAG_PREFIX, RESOURCE_TAG, RETAINED_TAG, STACK_ID_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import { ebsDirectProperties, HELPER_IMAGE_ID, HELPER_SUBNET_ID, helperInstanceProperties, LOGICAL_ID, REGION, STACK_ID, STAGING_BUCKET, X86_64_AKI } from '../../fixtures/custom-resource';
import { awsError, useFakeAws } from '../../fixtures/fake-aws';

process.env.AWS_REGION = REGION;
const { aws, logLines } = useFakeAws();

const BUILD_ID = 'mua-00000000000000d1';
const OTHER_BUILD_ID = 'mua-00000000000000d2';
const ROOT_DEVICE = '/dev/sda1';
const MINUTE = 60_000;

/** The tags every resource of a build carries (types.ts), plus `extra`. */
function tagsOf(buildId: string, extra: Tag[] = []): Tag[] {
  return [{ Key: BUILD_ID_TAG, Value: buildId }, { Key: STACK_ID_TAG, Value: STACK_ID }, { Key: RESOURCE_TAG, Value: LOGICAL_ID }, ...extra];
}

/** A build record (build-record.ts) of this outcome, as a tag. */
function recordTag(outcome: 'complete' | 'failed', imageId?: string): Tag {
  const startedAt = aws.clock.now() - 2 * SWEEP_PROOF_AGE_MS;
  return { Key: BUILD_RECORD_TAG, Value: formatBuildRecord({ version: 1, outcome, startedAt, stages: [{ stage: outcome, at: startedAt }], imageId }) };
}

interface Made {
  /** How long ago it was made. @default 2 hours */
  readonly ageMs?: number;
  readonly tags?: Tag[];
  /** EC2 does not know it by id (NotFound) for this long from now. @default known */
  readonly unknownByIdForMs?: number;
}

/** A completed snapshot of `buildId` in the account. */
function addSnapshot(buildId: string, made: Made = {}): string {
  const id = aws.world.nextId('snap');
  const createdAt = aws.clock.now() - (made.ageMs ?? 2 * SWEEP_PROOF_AGE_MS);
  aws.world.snapshots.set(id, {
    kind: 'snapshot', id, createdAt, byIdAt: aws.clock.now() + (made.unknownByIdForMs ?? -createdAt), byFilterAt: createdAt,
    tags: tagsOf(buildId, made.tags), volumeSize: 1, encrypted: false, state: 'completed',
  });
  return id;
}

interface MadeImage extends Made {
  readonly state: 'pending' | 'available' | 'deregistered';
  /** Its root snapshot. @default a new snapshot of the same build, as old */
  readonly snapshotId?: string;
  readonly protection?: 'without-cooldown' | 'with-cooldown';
}

/** An AMI of `buildId` in the account, with its root snapshot. */
function addImage(buildId: string, made: MadeImage): { imageId: string; snapshotId: string; createdAt: number } {
  const snapshotId = made.snapshotId ?? addSnapshot(buildId, { ageMs: made.ageMs });
  const imageId = aws.world.nextId('ami');
  const createdAt = aws.clock.now() - (made.ageMs ?? 2 * SWEEP_PROOF_AGE_MS);
  aws.world.images.set(imageId, {
    kind: 'image', id: imageId, createdAt, byIdAt: aws.clock.now() + (made.unknownByIdForMs ?? -createdAt), byFilterAt: createdAt,
    tags: tagsOf(buildId, made.tags), name: `hello-${buildId}-${imageId}`, owner: 'self', architecture: 'x86_64', virtualizationType: 'paravirtual',
    kernelId: X86_64_AKI, rootDeviceName: ROOT_DEVICE, blockDeviceMappings: [{ DeviceName: ROOT_DEVICE, Ebs: { SnapshotId: snapshotId } }],
    state: made.state, deregisteredAt: made.state === 'deregistered' ? aws.clock.now() - MINUTE : undefined, protection: made.protection,
  });
  return { imageId, snapshotId, createdAt };
}

/** The build's own Delete (an EBS-direct build unless `props` say otherwise). */
function ownDelete(overrides: Partial<BuildToRemove> = {}): BuildToRemove {
  return { buildId: BUILD_ID, props: ebsDirectProperties(), retain: false, finished: true, remover: 'delete', ...overrides };
}

const failedCleanup = (props: UnikernelAmiProperties = ebsDirectProperties()) => failedBuild(BUILD_ID, props, { createdAt: aws.clock.now() - 10 * MINUTE });
const sweep = (props: UnikernelAmiProperties = ebsDirectProperties()) => failedBuild(BUILD_ID, props, undefined, 'sweep');

function pass(build: BuildToRemove, removed?: Set<string>, found?: PassFindings): Promise<Leftover[]> {
  return aws.drive(removeBuildPass(clients, build, new StepLog(build.buildId), removed, found));
}

const steps = () => logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
const inputsOf = (action: string) => aws.handlerRequests(action).map((r) => r.input);
const recordOfTags = (id: string) => aws.tagsOf(id)[BUILD_RECORD_TAG];
const imageState = (id: string) => aws.world.images.get(id)?.state;
const snapshotThere = (id: string) => aws.world.snapshots.has(id);
const denied = () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', { status: 403 });

/** EC2 refuses every DescribeSnapshots that names snapshot ids (reads by id); tag-filtered ones are answered. */
function refuseSnapshotReadsById(): void {
  aws.onHandlerRequest((request) => {
    if (request.action === 'DescribeSnapshots' && request.input.SnapshotIds) {
      aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeSnapshots', maxHits: 1, error: denied });
    }
  });
}

describe('reasonToKeep: which AMIs, read by id, a remover other than the build\'s own Delete keeps', () => {
  /** An AMI as DescribeImages answers it, registered `ageMs` ago (no CreationDate without one). */
  function image(state: string, ageMs: number | undefined, tags?: Tag[]): Image {
    return { ImageId: 'ami-0123456789abcdef0', State: state as Image['State'], CreationDate: ageMs === undefined ? undefined : new Date(aws.clock.now() - ageMs).toISOString(), Tags: tags };
  }
  const YOUNG = 10 * MINUTE;
  const OLD = 2 * SWEEP_PROOF_AGE_MS;

  test('the build\'s own Delete keeps nothing: not an AMI recorded complete, available, or pending and young', () => {
    expect(reasonToKeep('delete', image('available', OLD, [recordTag('complete')]))).toBeUndefined();
    expect(reasonToKeep('delete', image('available', OLD))).toBeUndefined();
    expect(reasonToKeep('delete', image('pending', YOUNG))).toBeUndefined();
  });

  test.each(['failed', 'sweep'] as const)('%s: an AMI recorded complete is kept, available or read pending (a stale read)', (remover) => {
    expect(reasonToKeep(remover, image('available', OLD, [recordTag('complete')]))).toBe('its build is recorded complete');
    expect(reasonToKeep(remover, image('pending', OLD, [recordTag('complete')]))).toBe('its build is recorded complete');
  });

  test.each(['failed', 'sweep'] as const)('%s: an AMI already deregistered or failed has nothing to keep, even with a complete record', (remover) => {
    expect(reasonToKeep(remover, image('deregistered', YOUNG, [recordTag('complete')]))).toBeUndefined();
    expect(reasonToKeep(remover, image('failed', YOUNG, [recordTag('complete')]))).toBeUndefined();
  });

  test('the build\'s own failure cleanup removes every AMI without a complete record: available or pending, young or old', () => {
    expect(reasonToKeep('failed', image('available', YOUNG))).toBeUndefined();
    expect(reasonToKeep('failed', image('pending', YOUNG))).toBeUndefined();
    expect(reasonToKeep('failed', image('pending', undefined))).toBeUndefined();
    expect(reasonToKeep('failed', image('available', OLD, [recordTag('failed')]))).toBeUndefined();
  });

  test('sweep: an AMI carrying a failed record may go, available or pending and young', () => {
    expect(reasonToKeep('sweep', image('available', YOUNG, [recordTag('failed')]))).toBeUndefined();
    expect(reasonToKeep('sweep', image('pending', YOUNG, [recordTag('failed')]))).toBeUndefined();
  });

  test('sweep: an available AMI without a record (a build of an earlier version of the handler) is kept, young or old', () => {
    expect(reasonToKeep('sweep', image('available', OLD))).toBe('it is available and its build has no failed record');
    expect(reasonToKeep('sweep', image('available', YOUNG, [{ Key: 'project', Value: 'hello' }]))).toBe('it is available and its build has no failed record');
  });

  test('sweep: a pending AMI without a record is kept while younger than an hour (its operation may still run), and may go from the hour on', () => {
    const kept = 'it is pending, younger than an hour, and its build has no failed record';
    expect(reasonToKeep('sweep', image('pending', 0))).toBe(kept);
    expect(reasonToKeep('sweep', image('pending', SWEEP_PROOF_AGE_MS - 1000))).toBe(kept);
    expect(reasonToKeep('sweep', image('pending', SWEEP_PROOF_AGE_MS))).toBeUndefined();
    expect(reasonToKeep('sweep', image('pending', OLD))).toBeUndefined();
  });

  test('sweep: the hour is CloudFormation\'s, the handler\'s service timeout', () => {
    expect(SWEEP_PROOF_AGE_MS).toBe(3600_000);
  });

  test('sweep: a pending AMI whose registration time EC2 does not say is kept (its age is unknown)', () => {
    expect(reasonToKeep('sweep', image('pending', undefined))).toBe('it is pending, younger than an hour, and its build has no failed record');
  });

  test.each(['error', 'invalid'])('sweep: an AMI in state %s, young and without a record, may go (only pending counts as a build under way)', (state) => {
    expect(reasonToKeep('sweep', image(state, YOUNG))).toBeUndefined();
  });
});

describe('a removal pass: the build\'s AMIs, each decided on a read by its id', () => {
  test('the own Delete of a retained build keeps its available AMI and root snapshot, marks both retained, and deletes nothing', async () => {
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'available', tags: [recordTag('complete')] });
    const found: PassFindings = {};
    expect(await pass(ownDelete({ retain: true }), undefined, found)).toEqual([]);
    expect(imageState(imageId)).toBe('available');
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(inputsOf('DeregisterImage')).toEqual([]);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
    expect(inputsOf('CreateTags')).toEqual([{ Resources: [imageId, snapshotId], Tags: [{ Key: RETAINED_TAG, Value: 'true' }] }]);
    expect(found.image).toBe(true);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'remove-build-retaining-image', left: '' }));
  });

  test('a retained AMI read as pending, but recorded complete or already marked retained, is the available one: it stays', async () => {
    // (a read, even by id, may show an old state for a while)
    const complete = addImage(BUILD_ID, { state: 'pending', tags: [recordTag('complete')] });
    expect(await pass(ownDelete({ retain: true }))).toEqual([]);
    expect(imageState(complete.imageId)).toBe('pending');
    expect(inputsOf('DeregisterImage')).toEqual([]);
    aws.world.images.delete(complete.imageId);
    const marked = addImage(BUILD_ID, { state: 'pending', tags: [{ Key: RETAINED_TAG, Value: 'true' }] });
    expect(await pass(ownDelete({ retain: true }))).toEqual([]);
    expect(imageState(marked.imageId)).toBe('pending');
    expect(inputsOf('DeregisterImage')).toEqual([]);
    expect(snapshotThere(marked.snapshotId)).toBe(true);
  });

  test('the own Delete of a retained build keeps an available AMI without a record (built by an earlier version of the handler)', async () => {
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'available' });
    expect(await pass(ownDelete({ retain: true }))).toEqual([]);
    expect(imageState(imageId)).toBe('available');
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(aws.tagsOf(imageId)[RETAINED_TAG]).toBe('true');
  });

  test('the own Delete of a retained build that never finished (its AMI pending, without a record) removes the AMI: there is nothing finished to keep', async () => {
    const { imageId, snapshotId, createdAt } = addImage(BUILD_ID, { state: 'pending', ageMs: 30 * MINUTE });
    const left = await pass(ownDelete({ retain: true, finished: false }));
    expect(imageState(imageId)).toBe('deregistered');
    // (EC2 holds its snapshot for a few seconds after the deregistration: left for the next pass)
    expect(left).toEqual([{ kind: 'snapshot', id: snapshotId, createdAt }]);
    expect(inputsOf('CreateTags')).toEqual([]);
  });

  test('an AMI already marked retained is not tagged again (the role may no longer change its tags)', async () => {
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'available', tags: [recordTag('complete'), { Key: RETAINED_TAG, Value: 'true' }] });
    expect(await pass(ownDelete({ retain: true }))).toEqual([]);
    expect(inputsOf('CreateTags')).toEqual([]);
    expect(imageState(imageId)).toBe('available');
    expect(snapshotThere(snapshotId)).toBe(true);
  });

  test('marking the retained AMI is best effort: a refused CreateTags is logged, and the Delete goes on', async () => {
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'available', tags: [recordTag('complete')] });
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'CreateTags', maxHits: Infinity, error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', { status: 403 }) });
    expect(await pass(ownDelete({ retain: true }))).toEqual([]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'mark-retained-failed', resources: `${imageId},${snapshotId}`, error: expect.stringMatching(/^ec2:CreateTags failed: .*not authorized/) }));
  });

  test('the own Delete without retain deregisters an available AMI recorded complete and deletes its root snapshot by id, though the tag filter leaves the snapshot out', async () => {
    aws.configure({ snapshotReleaseMs: 0 });
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'available', tags: [recordTag('complete')] });
    aws.configure({ staleFilteredReads: [{ id: snapshotId }] });
    const found: PassFindings = {};
    expect(await pass(ownDelete(), undefined, found)).toEqual([]);
    expect(imageState(imageId)).toBe('deregistered');
    expect(snapshotThere(snapshotId)).toBe(false);
    expect(found.image).toBe(true);
    expect(steps()).toEqual(expect.arrayContaining([
      expect.objectContaining({ step: 'deregister-image', imageId }),
      expect.objectContaining({ step: 'delete-snapshot', snapshotId }),
      expect.objectContaining({ step: 'remove-build', left: '' }),
    ]));
  });

  test('a pass that deregisters the AMI has seen it, though EC2 still holds its snapshot for a moment', async () => {
    const { imageId, snapshotId, createdAt } = addImage(BUILD_ID, { state: 'available', tags: [recordTag('complete')] });
    const found: PassFindings = {};
    expect(await pass(ownDelete(), undefined, found)).toEqual([{ kind: 'snapshot', id: snapshotId, createdAt }]);
    expect(imageState(imageId)).toBe('deregistered');
    expect(found.image).toBe(true);
  });

  test('the own Delete deletes the root snapshot of an AMI it finds deregistered (the tag filter still listed it as available)', async () => {
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'deregistered' });
    aws.configure({ staleFilteredReads: [{ id: imageId, state: 'available' }, { id: snapshotId }] });
    const found: PassFindings = {};
    expect(await pass(ownDelete(), undefined, found)).toEqual([]);
    expect(inputsOf('DeregisterImage')).toEqual([]);
    expect(inputsOf('DeleteSnapshot')).toEqual([{ SnapshotId: snapshotId }]);
    expect(snapshotThere(snapshotId)).toBe(false);
    expect(found.image).toBe(true);
  });

  test('a failed build\'s cleanup deletes no snapshot of another build behind its AMI (a rename\'s), deregistered now or earlier', async () => {
    // GIVEN the build's AMIs registered on the snapshot of a build of an earlier handler version (no record)
    aws.configure({ snapshotReleaseMs: 0 });
    const writers = addSnapshot(OTHER_BUILD_ID);
    const renamed = addImage(BUILD_ID, { state: 'available', snapshotId: writers });
    const earlier = addImage(BUILD_ID, { state: 'deregistered', snapshotId: writers });
    aws.configure({ staleFilteredReads: [{ id: earlier.imageId, state: 'available' }] });
    // WHEN
    const found: PassFindings = {};
    expect(await pass(failedCleanup(), undefined, found)).toEqual([]);
    // THEN its own AMI goes, the other build's snapshot stays
    expect(imageState(renamed.imageId)).toBe('deregistered');
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
    expect(snapshotThere(writers)).toBe(true);
    expect(found.image).toBe(true);
  });

  test('a root snapshot EC2 does not know by id yet is left, with its AMI\'s registration time, while that AMI is young', async () => {
    // (the snapshot is older than the AMI: a NotFound for it is lag at most as long as for the AMI)
    aws.configure({ snapshotReleaseMs: 0 });
    const snapshotId = addSnapshot(BUILD_ID, { ageMs: 3 * MINUTE, unknownByIdForMs: 10 * MINUTE });
    const { imageId, createdAt } = addImage(BUILD_ID, { state: 'available', ageMs: MINUTE, snapshotId });
    aws.configure({ staleFilteredReads: [{ id: snapshotId }] });
    expect(await pass(ownDelete())).toEqual([{ kind: 'snapshot', id: snapshotId, createdAt }]);
    expect(imageState(imageId)).toBe('deregistered');
  });

  test('the tag filter lists an AMI that EC2 does not know by id: while young it is left, with its registration time; once old it is gone', async () => {
    // (its snapshot, which EC2 refuses to delete while the AMI is registered, is left too)
    const young = addImage(BUILD_ID, { state: 'pending', ageMs: MINUTE, unknownByIdForMs: 10 * MINUTE });
    expect(await pass(failedCleanup())).toEqual([{ kind: 'image', id: young.imageId, createdAt: young.createdAt }, { kind: 'snapshot', id: young.snapshotId, createdAt: young.createdAt }]);
    aws.world.images.delete(young.imageId);
    const old = addImage(BUILD_ID, { state: 'pending', ageMs: 10 * MINUTE, unknownByIdForMs: 10 * MINUTE });
    expect(await pass(failedCleanup())).toEqual([{ kind: 'snapshot', id: old.snapshotId, createdAt: old.createdAt }]);
    expect(inputsOf('DeregisterImage')).toEqual([]);
  });

  test('a sweep keeps an available AMI without a record and its root snapshot, and logs why', async () => {
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'available' });
    expect(await pass(sweep())).toEqual([]);
    expect(imageState(imageId)).toBe('available');
    expect(inputsOf('DeregisterImage')).toEqual([]);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'keep-image', imageId, state: 'available', why: 'it is available and its build has no failed record' }));
  });

  test('a failed build\'s cleanup keeps an AMI recorded complete (a repeated delivery of an event that completed), and logs why', async () => {
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'available', tags: [recordTag('complete')] });
    expect(await pass(failedCleanup())).toEqual([]);
    expect(imageState(imageId)).toBe('available');
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'keep-image', imageId, state: 'available', why: 'its build is recorded complete' }));
  });

  test('a failed build\'s cleanup records the build as failed on its AMI before deregistering it', async () => {
    aws.configure({ snapshotReleaseMs: 0 });
    const { imageId } = addImage(BUILD_ID, { state: 'pending', ageMs: MINUTE });
    expect(await pass(failedCleanup())).toEqual([]);
    const actions = aws.requests.filter((r) => r.action === 'CreateTags' || r.action === 'DeregisterImage').map((r) => `${r.action} ${JSON.stringify(r.input)}`);
    expect(actions).toEqual([expect.stringMatching(new RegExp(`^CreateTags .*${imageId}.*outcome=failed`)), `DeregisterImage {"ImageId":"${imageId}"}`]);
    expect(recordOfTags(imageId)).toMatch(/outcome=failed/);
    expect(imageState(imageId)).toBe('deregistered');
  });

  test('an AMI that carries a failed record already is not recorded again; the own Delete and a sweep record nothing', async () => {
    aws.configure({ snapshotReleaseMs: 0 });
    const failed = addImage(BUILD_ID, { state: 'available', tags: [recordTag('failed')] });
    expect(await pass(failedCleanup())).toEqual([]);
    expect(imageState(failed.imageId)).toBe('deregistered');
    const deleted = addImage(BUILD_ID, { state: 'available' });
    expect(await pass(ownDelete())).toEqual([]);
    expect(imageState(deleted.imageId)).toBe('deregistered');
    const swept = addImage(BUILD_ID, { state: 'pending' });
    expect(await pass(sweep())).toEqual([]);
    expect(imageState(swept.imageId)).toBe('deregistered');
    expect(inputsOf('CreateTags')).toEqual([]);
  });

  test('a failure record EC2 refuses is logged, and the AMI is still deregistered', async () => {
    const { imageId } = addImage(BUILD_ID, { state: 'available' });
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'CreateTags', maxHits: Infinity, error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', { status: 403 }) });
    await pass(failedCleanup());
    expect(imageState(imageId)).toBe('deregistered');
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'record-failure-failed', imageId, error: expect.stringContaining('not authorized') }));
  });

  test('an AMI with deregistration protection with cooldown is reported with what to do, and neither recorded nor deregistered', async () => {
    const { imageId, snapshotId, createdAt } = addImage(BUILD_ID, { state: 'available', protection: 'with-cooldown' });
    const left = await pass(failedCleanup());
    expect(left).toEqual([
      { kind: 'error', id: expect.stringContaining(`AMI ${imageId} has deregistration protection with cooldown`), transient: false, advice: expect.stringContaining('Delete again after the cooldown') },
      { kind: 'snapshot', id: snapshotId, createdAt },
    ]);
    expect(inputsOf('DeregisterImage')).toEqual([]);
    expect(recordOfTags(imageId)).toBeUndefined();
    expect(snapshotThere(snapshotId)).toBe(true);
  });

  test('a deregistration EC2 does not confirm (the AMI is not known by id to DeregisterImage yet) leaves the AMI, with its registration time', async () => {
    const { imageId, snapshotId, createdAt } = addImage(BUILD_ID, { state: 'available', ageMs: MINUTE });
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DeregisterImage', maxHits: Infinity, error: () => awsError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`) });
    expect(await pass(failedCleanup())).toEqual([{ kind: 'image', id: imageId, createdAt }, { kind: 'snapshot', id: snapshotId, createdAt }]);
  });
});

describe('a removal pass: the build\'s snapshots', () => {
  test('the own Delete deletes the build\'s snapshot recorded complete (no other remover may)', async () => {
    const snapshotId = addSnapshot(BUILD_ID, { tags: [recordTag('complete')] });
    const found: PassFindings = {};
    expect(await pass(ownDelete({ known: { snapshotIds: [snapshotId] } }), undefined, found)).toEqual([]);
    expect(snapshotThere(snapshotId)).toBe(false);
    expect(found.image).toBe(true);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'delete-snapshot', snapshotId }));
  });

  test('a failed build\'s cleanup keeps a snapshot it knows by id that is recorded complete (a repeated delivery of an event that completed), and logs why', async () => {
    const snapshotId = addSnapshot(BUILD_ID, { tags: [recordTag('complete')] });
    expect(await pass(failedBuild(BUILD_ID, ebsDirectProperties(), { snapshotIds: [snapshotId] }))).toEqual([]);
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'keep-snapshot', snapshotId, why: 'its build is recorded complete' }));
  });

  test('a sweep keeps a snapshot of the build recorded complete (its AMI was left out of the filtered read), and logs why', async () => {
    const snapshotId = addSnapshot(BUILD_ID, { tags: [recordTag('complete')] });
    expect(await pass(sweep())).toEqual([]);
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'keep-snapshot', snapshotId, why: 'its build is recorded complete' }));
  });

  test('a failed build\'s cleanup whose read of a snapshot by id is refused logs it and deletes the snapshot all the same (EC2 refuses it while an AMI uses it)', async () => {
    const snapshotId = addSnapshot(BUILD_ID);
    refuseSnapshotReadsById();
    expect(await pass(failedBuild(BUILD_ID, ebsDirectProperties(), { snapshotIds: [snapshotId] }))).toEqual([]);
    expect(snapshotThere(snapshotId)).toBe(false);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'describe-snapshot-failed', snapshotId, error: expect.stringContaining('not authorized') }));
  });

  test('a sweep whose read of a snapshot by id is refused deletes nothing and reports the refusal', async () => {
    const snapshotId = addSnapshot(BUILD_ID);
    refuseSnapshotReadsById();
    expect(await pass(sweep())).toEqual([{ kind: 'error', id: expect.stringContaining('ec2:DescribeSnapshots'), transient: false }]);
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
  });

  test('a snapshot this build made that EC2 does not know by id yet is left, with when the build began, not counted as gone', async () => {
    const startedAt = aws.clock.now() - MINUTE;
    const snapshotId = addSnapshot(BUILD_ID, { ageMs: 30_000, unknownByIdForMs: 10 * MINUTE });
    aws.configure({ staleFilteredReads: [{ id: snapshotId }] });
    expect(await pass(failedBuild(BUILD_ID, ebsDirectProperties(), { snapshotIds: [snapshotId], createdAt: startedAt }))).toEqual([{ kind: 'snapshot', id: snapshotId, createdAt: startedAt }]);
  });

  test('a snapshot known by id that EC2 still holds for the AMI just deregistered is reported once, though the tag filter lists it too', async () => {
    const startedAt = aws.clock.now() - 10 * MINUTE;
    const { imageId, snapshotId } = addImage(BUILD_ID, { state: 'pending', ageMs: 5 * MINUTE });
    const left = await pass(failedBuild(BUILD_ID, ebsDirectProperties(), { snapshotIds: [snapshotId], createdAt: startedAt }));
    expect(imageState(imageId)).toBe('deregistered');
    expect(left).toEqual([{ kind: 'snapshot', id: snapshotId, createdAt: startedAt }]);
    expect(inputsOf('DeleteSnapshot')).toEqual([{ SnapshotId: snapshotId }]);
  });

  test('a snapshot an earlier pass deleted is neither read nor deleted again', async () => {
    const snapshotId = 'snap-0123456789abcdef0';
    expect(await pass(failedBuild(BUILD_ID, ebsDirectProperties(), { snapshotIds: [snapshotId] }), new Set([snapshotId]))).toEqual([]);
    expect(aws.handlerRequests('DescribeSnapshots').filter((r) => r.input.SnapshotIds)).toEqual([]);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
  });

  test('the own Delete of a rename keeps the snapshot that the AMI of the build that wrote it still uses, and logs which AMI', async () => {
    // GIVEN build OTHER's AMI, recorded complete, and this build's AMI registered on the same snapshot (a rename)
    aws.configure({ snapshotReleaseMs: 0 });
    const writer = addImage(OTHER_BUILD_ID, { state: 'available' });
    aws.world.snapshots.get(writer.snapshotId)!.tags.push(recordTag('complete', writer.imageId));
    const rename = addImage(BUILD_ID, { state: 'available', snapshotId: writer.snapshotId });
    aws.world.snapshots.get(writer.snapshotId)!.tags.push({ Key: `${IMAGE_USER_TAG_PREFIX}${BUILD_ID}`, Value: rename.imageId });
    // WHEN
    const found: PassFindings = {};
    const removed = new Set<string>();
    expect(await pass(ownDelete(), removed, found)).toEqual([]);
    // THEN
    expect(imageState(rename.imageId)).toBe('deregistered');
    expect(snapshotThere(writer.snapshotId)).toBe(true);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
    expect(found.image).toBe(true);
    expect(removed.has(writer.snapshotId)).toBe(true);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'keep-snapshot', snapshotId: writer.snapshotId, why: `AMI ${writer.imageId} of another build uses it` }));
  });

  test('the own Delete whose read of a snapshot\'s users is refused logs it and leaves the decision to EC2', async () => {
    const snapshotId = addSnapshot(BUILD_ID);
    refuseSnapshotReadsById();
    expect(await pass(ownDelete({ known: { snapshotIds: [snapshotId] } }))).toEqual([]);
    expect(snapshotThere(snapshotId)).toBe(false);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'describe-snapshot-users-failed', snapshotId, error: expect.stringContaining('not authorized') }));
  });
});

describe('a removal pass of a helper build: its progress and staged objects', () => {
  const helperCleanup = () => failedBuild(BUILD_ID, helperInstanceProperties());
  const stagedKeys = () => [...(aws.world.buckets.get(STAGING_BUCKET)?.keys() ?? [])].filter((key) => key.includes(BUILD_ID));

  test('the ids in the progress object are removed by id, though the tag filter does not list them, and then the progress and staged objects go', async () => {
    // GIVEN a helper that EC2 does not know yet (launched a moment ago), a snapshot the filter leaves out, and the staged image
    const snapshotId = addSnapshot(BUILD_ID, { ageMs: 2 * MINUTE });
    aws.configure({ staleFilteredReads: [{ id: snapshotId }] });
    const startedAt = aws.clock.now() - MINUTE;
    const instanceId = 'i-0123456789abcdef0';
    aws.putObject(STAGING_BUCKET, progressKey(BUILD_ID), Buffer.from(JSON.stringify({ startedAt, instanceId, snapshotIds: [snapshotId] })));
    for (const key of Object.values(stagingKeys(BUILD_ID))) {
      aws.putObject(STAGING_BUCKET, key, Buffer.from('staged'));
    }
    // WHEN
    const left = await pass(helperCleanup());
    // THEN the helper is terminated by its id (and left: EC2 may not know it yet, with when the build began)
    expect(inputsOf('TerminateInstances')).toEqual([{ InstanceIds: [instanceId] }]);
    expect(left).toEqual([{ kind: 'instance', id: instanceId, createdAt: startedAt }]);
    expect(snapshotThere(snapshotId)).toBe(false);
    expect(stagedKeys()).toEqual([]);
  });

  test('a staging bucket that is gone means there is nothing staged: nothing is reported', async () => {
    aws.world.buckets.delete(STAGING_BUCKET);
    expect(await pass(helperCleanup())).toEqual([]);
  });

  test('a refused read of the progress object is reported, and the rest of the build is still removed', async () => {
    aws.putObject(STAGING_BUCKET, progressKey(BUILD_ID), Buffer.from('{}'));
    const snapshotId = addSnapshot(BUILD_ID);
    aws.injectFault({ kind: 'access-denied', service: 's3', action: 'GetObject', maxHits: Infinity });
    const left = await pass(helperCleanup());
    expect(left).toEqual([{ kind: 'error', id: expect.stringContaining('s3:GetObject progress'), transient: false }]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'remove-build-error', part: 'progress' }));
    expect(snapshotThere(snapshotId)).toBe(false);
    expect(stagedKeys()).toEqual([]);
  });

  test('a refused DescribeInstances is reported naming the call, and the staged objects still go', async () => {
    aws.putObject(STAGING_BUCKET, progressKey(BUILD_ID), Buffer.from('{}'));
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeInstances', maxHits: Infinity, error: denied });
    expect(await pass(helperCleanup())).toEqual([{ kind: 'error', id: expect.stringContaining('ec2:DescribeInstances'), transient: false }]);
    expect(stagedKeys()).toEqual([]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'remove-build-error', part: 'helper', error: expect.stringContaining('not authorized') }));
  });

  test('a refused deletion of the staged objects is reported, naming the part, as not transient', async () => {
    aws.injectFault({ kind: 'access-denied', service: 's3', action: 'DeleteObject', maxHits: Infinity });
    expect(await pass(helperCleanup())).toEqual([{ kind: 'error', id: expect.stringContaining('s3:DeleteObject'), transient: false }]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'remove-build-error', part: 'staged objects' }));
  });

  test('the Delete of a finished helper build makes no S3 request: its staged objects went when it finished, and its bucket may be gone since', async () => {
    aws.world.buckets.delete(STAGING_BUCKET);
    expect(await pass(ownDelete({ props: helperInstanceProperties(), finished: true }))).toEqual([]);
    expect(aws.requests.filter((r) => r.service === 's3')).toEqual([]);
  });
});

describe('removeBuild: passes until nothing is left or the time is up', () => {
  /** A leftover no pass can remove: an AMI whose deregistration protection has a cooldown. */
  const protectedImage = () => addImage(BUILD_ID, { state: 'available', protection: 'with-cooldown' });
  const passTimes = () => steps().filter((s) => s.step === 'remove-build').map((s) => s.elapsedMs);

  test('waits 5, 10, 20, then 30 s between passes, and stops before a wait would pass the budget', async () => {
    protectedImage();
    const left = await aws.drive(removeBuild(clients, failedCleanup(), new StepLog(BUILD_ID), 100_000));
    expect(passTimes()).toEqual([0, 5_000, 15_000, 35_000, 65_000, 95_000]);
    expect(left.map((l) => l.kind)).toEqual(['error', 'snapshot']);
    // (each pass logs what is left, comma-separated)
    expect(steps().filter((step) => step.step === 'remove-build').pop()!.left).toBe(`${left[0].id},${left[1].id}`);
  });

  test('stops within the invocation\'s time, keeping 15 s to report, even with a larger budget', async () => {
    protectedImage();
    await aws.drive(runInvocation(undefined, 50_000, 0, () => removeBuild(clients, failedCleanup(), new StepLog(BUILD_ID), 10 * MINUTE)));
    // (the invocation ends 50 s from now: passes may start until 35 s)
    expect(passTimes()).toEqual([0, 5_000, 15_000, 35_000]);
  });

  test('one pass when nothing is left', async () => {
    expect(await aws.drive(removeBuild(clients, failedCleanup(), new StepLog(BUILD_ID), 10 * MINUTE))).toEqual([]);
    expect(passTimes()).toEqual([0]);
  });
});

describe('the sweep of a resource\'s failed builds', () => {
  const ec2 = new EC2Client({ region: REGION });
  const build = (n: number) => `mua-0000000000000a${n.toString(16).padStart(2, '0')}`;

  /** A running instance launched with these tags, as a helper is. */
  async function launch(tags: Tag[]): Promise<string> {
    const response = await aws.drive(ec2.send(new RunInstancesCommand({
      ImageId: HELPER_IMAGE_ID, InstanceType: 't3.small', MinCount: 1, MaxCount: 1, SubnetId: HELPER_SUBNET_ID,
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
    })));
    await aws.advance(MINUTE);
    return response.Instances![0].InstanceId!;
  }

  test('the candidates are the resource\'s builds without an available AMI, but those excluded, with what the tag filter listed of each', async () => {
    // GIVEN builds of the resource: finished, failed (AMI and snapshot), a snapshot only, excluded, an instance only
    addImage(build(1), { state: 'available' });
    const failed = addImage(build(2), { state: 'pending', tags: [recordTag('failed')] });
    const snapshotOnly = addSnapshot(build(3));
    addSnapshot(build(4));
    await launch(tagsOf(build(5)));
    // and what is not the resource's or no build's: another resource's build, a snapshot without a build id
    aws.world.snapshots.get(addSnapshot(build(6)))!.tags = tagsOf(build(6)).map((tag) => (tag.Key === RESOURCE_TAG ? { ...tag, Value: 'OtherAmi' } : tag));
    aws.world.snapshots.get(addSnapshot(build(7)))!.tags = tagsOf(build(7)).filter((tag) => tag.Key !== BUILD_ID_TAG);
    const untagged = addSnapshot(build(9));
    aws.world.snapshots.get(untagged)!.tags = [];
    aws.world.images.get(addImage(build(8), { state: 'pending', snapshotId: untagged }).imageId)!.tags = tagsOf(build(8)).filter((tag) => tag.Key !== BUILD_ID_TAG);
    await launch(tagsOf(build(10)).filter((tag) => tag.Key !== BUILD_ID_TAG));
    // WHEN
    const byId = (list: { buildId: string }[]) => [...list].sort((a, b) => a.buildId.localeCompare(b.buildId));
    const withInstances = await aws.drive(findFailedBuilds(clients.ec2, STACK_ID, LOGICAL_ID, true, new Set([build(4)])));
    const withoutInstances = await aws.drive(findFailedBuilds(clients.ec2, STACK_ID, LOGICAL_ID, false, new Set([build(4)])));
    // THEN
    expect(byId(withInstances)).toEqual([
      { buildId: build(2), imageIds: [failed.imageId], snapshotIds: [failed.snapshotId] },
      { buildId: build(3), imageIds: [], snapshotIds: [snapshotOnly] },
      { buildId: build(5), imageIds: [], snapshotIds: [] },
    ]);
    expect(byId(withoutInstances).map((c) => c.buildId)).toEqual([build(2), build(3)]);
  });

  test('each candidate is confirmed by id: one whose AMI must stay, or whose snapshot is recorded complete, is spared and the log says why; the others are removed', async () => {
    // GIVEN a failed build, a build whose pending AMI is young and has no record, and one whose snapshot is recorded complete
    const failed = addImage(build(1), { state: 'pending', tags: [recordTag('failed')] });
    const young = addImage(build(2), { state: 'pending', ageMs: 10 * MINUTE });
    const complete = addSnapshot(build(3), { tags: [recordTag('complete')] });
    // and one whose AMI is listed by the tag filter but gone by id (old)
    const gone = addImage(build(4), { state: 'pending', unknownByIdForMs: 10 * MINUTE });
    // WHEN
    await aws.drive(sweepFailedBuilds(clients, STACK_ID, LOGICAL_ID, [ebsDirectProperties()], new Set(), new StepLog(BUILD_ID)));
    // THEN
    expect(inputsOf('DeregisterImage')).toEqual([{ ImageId: failed.imageId }]);
    expect(imageState(gone.imageId)).toBe('pending');
    expect(imageState(young.imageId)).toBe('pending');
    expect(snapshotThere(young.snapshotId)).toBe(true);
    expect(snapshotThere(complete)).toBe(true);
    expect(steps()).toEqual(expect.arrayContaining([
      expect.objectContaining({ step: 'sweep-failed-build', failedBuildId: build(1), left: `snapshot ${failed.snapshotId}` }),
      expect.objectContaining({ step: 'sweep-spare-build', buildId: build(2), why: `AMI ${young.imageId} stays: it is pending, younger than an hour, and its build has no failed record` }),
      expect.objectContaining({ step: 'sweep-spare-build', buildId: build(3), why: `snapshot ${complete} stays: its build is recorded complete` }),
      expect.objectContaining({ step: 'sweep-failed-build', failedBuildId: build(4) }),
    ]));
    expect(steps().filter((step) => String(step.step).startsWith('sweep-'))).toHaveLength(4);
  });

  test('a sweep whose read of a snapshot by id is refused during the removal (after the candidate was confirmed) deletes nothing and reports the refusal', async () => {
    const snapshotId = addSnapshot(build(1));
    let reads = 0;
    aws.onHandlerRequest((request) => {
      if (request.action === 'DescribeSnapshots' && request.input.SnapshotIds && ++reads === 2) {
        aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeSnapshots', maxHits: 1, error: denied });
      }
    });
    await aws.drive(sweepFailedBuilds(clients, STACK_ID, LOGICAL_ID, [ebsDirectProperties()], new Set(), new StepLog(BUILD_ID)));
    expect(snapshotThere(snapshotId)).toBe(true);
    expect(inputsOf('DeleteSnapshot')).toEqual([]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'sweep-failed-build', failedBuildId: build(1), left: expect.stringContaining('ec2:DescribeSnapshots') }));
  });

  test('with the properties of a helper build among those given (an Update from helper-instance to EBS direct), instances are looked for and the staged objects go', async () => {
    const instanceId = await launch(tagsOf(build(1)));
    aws.putObject(STAGING_BUCKET, progressKey(build(1)), Buffer.from('{}'));
    await aws.drive(sweepFailedBuilds(clients, STACK_ID, LOGICAL_ID, [ebsDirectProperties(), helperInstanceProperties()], new Set(), new StepLog(BUILD_ID)));
    expect(inputsOf('TerminateInstances')).toEqual([{ InstanceIds: [instanceId] }]);
    expect(aws.world.buckets.get(STAGING_BUCKET)!.has(progressKey(build(1)))).toBe(false);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'sweep-failed-build', failedBuildId: build(1), left: '' }));
  });
});

describe('isFinishedBuild: whether a build had finished when its Delete began', () => {
  test('a build with an available AMI has finished; one whose AMI is pending, or with none, has not', async () => {
    addImage(build2(1), { state: 'available' });
    addImage(build2(2), { state: 'pending' });
    addImage(build2(3), { state: 'pending' });
    addImage(build2(3), { state: 'available' });
    expect(await aws.drive(isFinishedBuild(clients.ec2, build2(1)))).toBe(true);
    expect(await aws.drive(isFinishedBuild(clients.ec2, build2(2)))).toBe(false);
    expect(await aws.drive(isFinishedBuild(clients.ec2, build2(3)))).toBe(true);
    expect(await aws.drive(isFinishedBuild(clients.ec2, build2(4)))).toBe(false);
  });
  const build2 = (n: number) => `mua-0000000000000b0${n}`;
});

describe('describeLeftovers: what a failure message says is left', () => {
  test('an error by its text, anything else by its kind and id, comma-separated', () => {
    expect(describeLeftovers([
      { kind: 'error', id: 'AccessDenied: not allowed' },
      { kind: 'snapshot', id: 'snap-0123456789abcdef0' },
      { kind: 'staged objects', id: 's3://staging-bucket/builds/x/' },
    ])).toBe('AccessDenied: not allowed, snapshot snap-0123456789abcdef0, staged objects s3://staging-bucket/builds/x/');
  });
});

describe('a removal pass: what it reports of a refused part, and of deregistration protection', () => {
  /** The one error a pass reports, and the part its log line names. */
  async function refusedPart(build: BuildToRemove): Promise<{ left: Leftover[]; parts: unknown[] }> {
    const left = await pass(build);
    return { left, parts: steps().filter((s) => s.step === 'remove-build-error').map((s) => s.part) };
  }

  test('a refused DescribeImages: the part "images" is logged, and the leftover is the error\'s code and message, once each', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeImages', maxHits: Infinity, error: denied });
    const { left, parts } = await refusedPart(ownDelete());
    expect(parts).toEqual(['images']);
    expect(left).toHaveLength(1);
    expect(left[0].id).toMatch(/^UnauthorizedOperation: ec2:DescribeImages/);
    expect(left[0].id.match(/UnauthorizedOperation/g)).toHaveLength(1);
  });

  test('a refused deletion of a snapshot known by id: the part "snapshots by id" is logged, and the snapshot stays', async () => {
    const snapshotId = addSnapshot(BUILD_ID);
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DeleteSnapshot', maxHits: Infinity, error: denied });
    const { left, parts } = await refusedPart(ownDelete({ known: { snapshotIds: [snapshotId] } }));
    expect(parts[0]).toBe('snapshots by id');
    expect(left[0].id).toMatch(/^UnauthorizedOperation: ec2:DeleteSnapshot/);
    expect(snapshotThere(snapshotId)).toBe(true);
  });

  test('a refused tag-filtered DescribeSnapshots: the part "snapshots by tag" is logged', async () => {
    aws.onHandlerRequest((request) => {
      if (request.action === 'DescribeSnapshots' && !request.input.SnapshotIds) {
        aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeSnapshots', maxHits: 1, error: denied });
      }
    });
    const { left, parts } = await refusedPart(ownDelete());
    expect(parts).toEqual(['snapshots by tag']);
    expect(left).toEqual([{ kind: 'error', id: expect.stringMatching(/^UnauthorizedOperation: ec2:DescribeSnapshots/), transient: false }]);
  });

  test('protection without cooldown is turned off once, logged with what it was, and the AMI deregistered', async () => {
    const { imageId } = addImage(BUILD_ID, { state: 'available', protection: 'without-cooldown' });
    // Its root snapshot, which EC2 holds for a moment after the deregistration, goes in a later pass.
    expect((await pass(ownDelete())).filter((l) => l.kind !== 'snapshot')).toEqual([]);
    expect(inputsOf('DisableImageDeregistrationProtection')).toEqual([expect.objectContaining({ ImageId: imageId })]);
    expect(steps()).toContainEqual(expect.objectContaining({ step: 'disable-deregistration-protection', imageId, was: 'enabled-without-cooldown' }));
    expect(imageState(imageId)).toBe('deregistered');
  });

  test('a refused DisableImageDeregistrationProtection is reported naming the call, and the AMI stays', async () => {
    const { imageId } = addImage(BUILD_ID, { state: 'available', protection: 'without-cooldown' });
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DisableImageDeregistrationProtection', maxHits: Infinity, error: denied });
    const left = await pass(ownDelete());
    expect(left[0]).toEqual({ kind: 'error', id: expect.stringMatching(/^UnauthorizedOperation: ec2:DisableImageDeregistrationProtection/), transient: false });
    expect(imageState(imageId)).toBe('available');
  });

  test('an AMI whose protection is off but still in its cooldown is not turned off again: it is reported with when it can go', async () => {
    const { imageId } = addImage(BUILD_ID, { state: 'available' });
    const until = aws.clock.now() + 3 * 3600_000;
    aws.world.images.get(imageId)!.protectedUntil = until;
    const left = await pass(ownDelete());
    expect(inputsOf('DisableImageDeregistrationProtection')).toEqual([]);
    expect(inputsOf('DeregisterImage')).toEqual([]);
    expect(left[0]).toEqual(expect.objectContaining({ kind: 'error', id: expect.stringContaining(`(disabled-until-${new Date(until).toISOString()})`) }));
    expect(imageState(imageId)).toBe('available');
  });
});
