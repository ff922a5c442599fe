/**
 * The custom-resource handler of Custom::MirageUnikernelAmi, run by the CDK provider framework:
 * onEvent starts the work of a Create, Update or Delete, and isComplete is called every ~10 s until
 * the work is done (a build's isComplete also looks again within its invocation: pollWithinInvocation).
 * State is read back from AWS on every call, so every step may repeat.
 *
 * How it converges:
 * - A transient error (throttling, a server error, a lost response) in isComplete is only "not
 *   complete yet": the next round tries again. Anything else fails the build.
 * - A failed build removes what it made, by the ids its create calls returned, before it reports
 *   the failure, for as long as its invocation allows. What is left then goes to the next event that
 *   will come: the Delete of a failed Create (CloudFormation got the build id), or, for a failed
 *   Update whose build id CloudFormation never keeps, the next Update or Delete of the resource,
 *   which removes the resource's failed builds. An onEvent failure of a Create gets no later event
 *   (the framework ignores the Delete of its CREATE_FAILED marker), so onEvent creates as little as
 *   it can: the helper strategy launches its instance last, and the instance shuts itself down if
 *   every handler invocation should be lost.
 * - The handler has a deadline of its own (HANDLER_DEADLINE_MS), below the provider's total timeout
 *   (55 minutes) and CloudFormation's hour, so that a step that never finishes fails the build
 *   cleanly, with the handler's own message, instead of "Operation timed out".
 * - Every failure message is one line that fits CloudFormation's 4,096-byte response (failure.ts).
 * - The same event may be delivered again, one after the other or at once (the provider framework
 *   retries its isComplete task, re-invokes a function whose invoke call failed, and starts its
 *   executions without a name). A build records its completion on its AMI (build-record.ts) before
 *   isComplete first answers complete; a later delivery that no longer finds the build's working
 *   state (the helper terminated, the progress object removed) finds the record and answers the same.
 *   No cleanup but the build's own Delete deregisters an AMI recorded complete (cleanup.ts).
 */
import { BuildStrategyKind, OPERATION_TIMING, UnikernelAmiAttributes } from '../types';
import { buildIdOf, isBuildId } from './build-id';
import { findRecordedCompletion, isRecordedComplete, recordCompletion, recordOf } from './build-record';
import { BuildToRemove, describeLeftovers, failedBuild, isFinishedBuild, KnownIds, Leftover, PassFindings, removeBuild, removeBuildPass, sweepFailedBuilds } from './cleanup';
import { AwsClients, clients } from './clients';
import { clock, InvocationContext, invocationTimeLeft, runInvocation } from './clock';
import { DirectUploadError, uploadSnapshotDirect } from './ebs-direct';
import { applyDistribution } from './distribution';
import { checkDefaultEncryptionKey } from './encryption-default';
import {
  BuildAction,
  BuildState,
  IsCompleteRequest,
  IsCompleteResponse,
  OnEventRequest,
  OnEventResponse,
} from './events';
import { BuildFailure, failureMessage } from './failure';
import { advanceHelperBuild, deleteDuplicateSnapshots, HelperContext, launchHelper, terminateHelper } from './helper-instance';
import {
  describeBuiltImage,
  describeImageById,
  describeOwnSnapshot,
  describeSnapshotById,
  ensureImage,
  findBuildByProperties,
  findBuildImages,
  ImageProgress,
  imageNameOf,
  imageUserOf,
  isNotFound,
  isYoung,
  markImageUser,
  retagImage,
  rootSnapshotOf,
  snapshotWait,
  timeOf,
} from './image';
import { prepareDiskImage } from './kernel';
import { StepLog } from './log';
import { progressPercentOf } from './stages';
import { deleteProgress, readProgress, writeProgress } from './progress';
import { buildTags, changedRebuildProperties, imageNameChanged, parseProperties, propertiesHash, resourceFilters } from './properties';
import { isRetryableError } from './retry';
import { deleteStagedImage, stageImage } from './staging';
import { migrateBuildTags } from './tag-migration';

/** The Lambda timeouts of onEvent and isComplete, for calls without a Lambda context. */
const ON_EVENT_TIMEOUT_MS = OPERATION_TIMING.onEventSeconds * 1000;
const IS_COMPLETE_TIMEOUT_MS = OPERATION_TIMING.isCompleteSeconds * 1000;
/** Time kept back at the end of an invocation to report its outcome instead of being cut off. */
const INVOCATION_MARGIN_MS = 20_000;
/**
 * A build (or removal) that has not finished this long after its onEvent began fails; with one last
 * isComplete (cleanup included) it still reports before the provider's waiter gives up
 * (OPERATION_TIMING in types.ts).
 */
export const HANDLER_DEADLINE_MS = OPERATION_TIMING.handlerDeadlineSeconds * 1000;
/** Whether the handler's own deadline has passed for a build (or removal) whose onEvent began at `startedAt`. */
function pastDeadline(startedAt: number): boolean {
  return clock().now() - startedAt >= HANDLER_DEADLINE_MS;
}
/**
 * How long a Delete that has not seen the build's AMI goes on looking before it concludes that there
 * is none (a failed build's, or one removed before): EC2's reads may leave a resource out or answer
 * NotFound for "a couple of seconds ... up to a few minutes" ("Eventual consistency in the Amazon
 * EC2 API"). Counted from the end of the Delete's onEvent.
 */
const DELETE_UNSEEN_CONFIRM_MS = 3 * 60_000;
/** How long a failed onEvent may spend removing what it made (its Lambda has 10 minutes; never past its end). */
const ON_EVENT_CLEANUP_MS = 8 * 60_000;
/** How long a failed isComplete may spend removing what the build made (its Lambda has 5 minutes). */
const IS_COMPLETE_CLEANUP_MS = 4 * 60_000;
/**
 * Before a build is failed, its complete record is looked for again after these pauses: a build that
 * completed moments ago may not be listed by EC2's tag filter yet.
 */
const RECORD_LOOKUP_WAITS_MS = [10_000, 20_000];
/** Invocation time those look-ups leave to the failure cleanup that may follow them. */
const RECORD_LOOKUP_RESERVE_MS = 2 * 60_000;

export async function onEvent(event: OnEventRequest, context?: InvocationContext): Promise<OnEventResponse> {
  return runInvocation(context, ON_EVENT_TIMEOUT_MS, INVOCATION_MARGIN_MS, () =>
    reportFailure(event.RequestType === 'Delete' && isBuildId(event.PhysicalResourceId) ? event.PhysicalResourceId : buildIdOf(event), () => startRequest(event)));
}

export async function isComplete(event: IsCompleteRequest, context?: InvocationContext): Promise<IsCompleteResponse> {
  return runInvocation(context, IS_COMPLETE_TIMEOUT_MS, INVOCATION_MARGIN_MS, () => reportFailure(event.PhysicalResourceId, () => continueRequest(event)));
}

/** Any error leaves the handler as one line that fits CloudFormation's response and names the build. */
async function reportFailure<T>(buildId: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(failureMessage(buildId, message));
  }
}

function startRequest(event: OnEventRequest): Promise<OnEventResponse> {
  switch (event.RequestType) {
    case 'Create':
      return startBuild(event);
    case 'Update':
      return startUpdate(event);
    case 'Delete':
      return startDelete(event);
    default:
      throw new Error(`Unknown RequestType ${JSON.stringify((event as { RequestType: unknown }).RequestType)}`);
  }
}

async function continueRequest(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  switch (event.BuildState?.Action) {
    case BuildAction.BUILD:
      return continueBuild(event);
    case BuildAction.RETAG:
      return continueRetag(event);
    case BuildAction.DELETE:
      return continueDelete(event);
    default:
      throw new Error(`isComplete got no BuildState from onEvent (got ${JSON.stringify(event.BuildState)}); it must run behind the same provider as onEvent.`);
  }
}

/** Everything a build step needs. */
type BuildContext = HelperContext & Pick<AwsClients, 'ebs' | 'kms'>;

function buildContext(aws: AwsClients, buildId: string, event: OnEventRequest, log: StepLog): BuildContext {
  const spec = parseProperties(event.ResourceProperties);
  const identity = { buildId, stackId: event.StackId, logicalId: event.LogicalResourceId, propertiesHash: propertiesHash(event.ResourceProperties) };
  return { ...aws, buildId, spec, tags: buildTags(identity, spec), log };
}

/**
 * Create, or an Update that changes the disk or AMI: a new build under a new physical id, so that
 * CloudFormation deletes the old build once the stack update succeeds.
 */
async function startBuild(event: OnEventRequest): Promise<OnEventResponse> {
  const buildId = buildIdOf(event);
  const startedAt = clock().now();
  const log = new StepLog(buildId);
  const ctx = buildContext(clients, buildId, event, log);
  log.stage('started', { stackId: event.StackId, logicalId: event.LogicalResourceId, requestType: event.RequestType, strategy: ctx.spec.strategy });
  // Inspect the kernel before anything is created: a refused kernel leaves nothing behind. The
  // build then streams the kernel object into the disk's blocks as it writes them.
  const image = await prepareDiskImage(ctx.s3, ctx.spec);
  log.step('lay-out-disk', { kernelBytes: image.plan.kernelBytes, filesystemBytes: image.plan.filesystemBytes, layout: image.layout });
  await checkDefaultEncryptionKey(clients, ctx.spec);
  try {
    if (ctx.spec.strategy === BuildStrategyKind.HELPER_INSTANCE) {
      await stageImage(ctx, image);
      const instanceId = await launchOrLeaveToIsComplete(ctx);
      // A Delete that comes before EC2 lists the new instance by its tags still finds it here. A
      // repeated delivery of this event (the same build id, the same helper by its client token)
      // keeps what an earlier delivery's rounds recorded (the script's command, the snapshot): a
      // later round that lost them would find the helper terminated and fail a build that is done.
      await readProgress(ctx.s3, ctx.spec.stagingBucket!, buildId)
        .then((earlier) => writeProgress(ctx.s3, ctx.spec.stagingBucket!, buildId, { ...earlier, startedAt: earlier.startedAt ?? startedAt, instanceId: earlier.instanceId ?? instanceId }))
        .catch((err) => {
          throw Object.assign(err, { launchedInstanceId: instanceId });
        });
      return { PhysicalResourceId: buildId, BuildState: { Action: BuildAction.BUILD, InstanceId: instanceId, StartedAt: startedAt } };
    }
    const result = await uploadSnapshotDirect(ctx.ebs, ctx.ec2, {
      image,
      buildId,
      volumeSizeGiB: ctx.spec.volumeSizeGiB,
      tags: [...ctx.tags],
      encrypted: ctx.spec.encrypted,
      kmsKeyArn: ctx.spec.kmsKeyArn,
      description: `${ctx.spec.name} unikernel disk (mirage-unikernel-ami build ${buildId})`,
      log,
    });
    log.step('upload-snapshot-direct', { snapshotId: result.snapshotId, blocks: result.blocksSent, snapshotBlocks: result.snapshotBlocks, apiCalls: result.apiCalls });
    log.stage('verified', { snapshotId: result.snapshotId, blocks: result.snapshotBlocks, totalBlocks: result.snapshotBlocks });
    return { PhysicalResourceId: buildId, BuildState: { Action: BuildAction.BUILD, SnapshotId: result.snapshotId, StartedAt: startedAt, Blocks: result.snapshotBlocks } };
  } catch (err) {
    // Nothing will come back for this build if it is a Create (the framework ignores the Delete of
    // its failure marker), nor for an Update's new build id: remove everything now.
    const known: KnownIds = { snapshotIds: err instanceof DirectUploadError ? [err.snapshotId] : [], instanceIds: launched(err), createdAt: startedAt };
    log.stage('failed', { reason: err instanceof Error ? err.message : String(err) });
    const left = await removeBuild(clients, failedBuild(buildId, event.ResourceProperties, known), log, ON_EVENT_CLEANUP_MS);
    throw withLeftovers(err, left, event.RequestType === 'Create'
      ? `delete them by hand (tag mirage-unikernel-ami:build-id=${buildId})`
      : 'the next update or delete of this resource removes them');
  }
}

/** The helper an onEvent launched before it failed (only the progress write comes after the launch). */
function launched(err: unknown): string[] {
  const instanceId = (err as { launchedInstanceId?: string } | undefined)?.launchedInstanceId;
  return instanceId ? [instanceId] : [];
}

/**
 * RunInstances, with the build id as client token. If every attempt met a transient error, the
 * instance may or may not exist: isComplete asks again with the same token, which returns it if it
 * does, rather than this onEvent failing and leaving it behind.
 */
async function launchOrLeaveToIsComplete(ctx: BuildContext): Promise<string | undefined> {
  try {
    return await launchHelper(ctx);
  } catch (err) {
    if (!isRetryableError(err)) {
      throw err;
    }
    ctx.log.step('run-instances-unanswered', { error: (err as Error).message });
    return undefined;
  }
}

async function continueBuild(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  const buildId = event.PhysicalResourceId;
  const state = event.BuildState;
  const startedAt = state.StartedAt ?? clock().now();
  const log = new StepLog(buildId);
  const ctx = buildContext(clients, buildId, event, log);
  try {
    const done = await pollWithinInvocation(log, startedAt, () => (state.SourceSnapshotId
      ? advanceRenameToImage(ctx, state.SourceSnapshotId, startedAt)
      : ctx.spec.strategy === BuildStrategyKind.HELPER_INSTANCE
        ? advanceHelperToImage(ctx, state, startedAt)
        : advanceDirectToImage(ctx, state.SnapshotId!, startedAt, state.Blocks)));
    if (typeof done === 'string') {
      return notComplete(done, startedAt, log);
    }
    log.step('complete', { ...done });
    log.stage('complete', { imageId: done.ImageId, snapshotId: done.SnapshotId });
    return { IsComplete: true, Data: done };
  } catch (err) {
    if (isRetryableError(err) && !pastDeadline(startedAt)) {
      log.step('transient-error', { error: (err as Error).message });
      return { IsComplete: false };
    }
    // A repeated delivery of an isComplete that has answered complete no longer finds the build's
    // working state: the record says it is complete, and the answer is the same.
    let recorded;
    try {
      recorded = await findRecordedCompletion(clients.ec2, buildId, RECORD_LOOKUP_WAITS_MS, RECORD_LOOKUP_RESERVE_MS);
    } catch (lookupErr) {
      if (isRetryableError(lookupErr) && !pastDeadline(startedAt)) {
        log.step('transient-error', { error: (lookupErr as Error).message });
        return { IsComplete: false };
      }
    }
    if (recorded) {
      log.step('complete-already-recorded', { ...recorded, error: (err as Error).message });
      log.stage('complete', { imageId: recorded.ImageId, snapshotId: recorded.SnapshotId });
      if (ctx.spec.strategy === BuildStrategyKind.HELPER_INSTANCE && !(await tidyRepeatedHelperBuild(ctx, startedAt))) {
        return { IsComplete: false };
      }
      return { IsComplete: true, Data: named(ctx, recorded) };
    }
    log.step('build-failed', { error: (err as Error).message });
    log.stage('failed', { reason: (err as Error).message });
    const known: KnownIds = { instanceIds: state.InstanceId ? [state.InstanceId] : [], snapshotIds: state.SnapshotId ? [state.SnapshotId] : [], createdAt: startedAt };
    const left = await removeBuild(clients, failedBuild(buildId, event.ResourceProperties, known), log, IS_COMPLETE_CLEANUP_MS);
    throw withLeftovers(err, left, event.RequestType === 'Create' ? 'the Delete that follows removes them' : 'the next update or delete of this resource removes them');
  }
}

/**
 * A repeated onEvent of a helper build that had completed staged the image and wrote a progress
 * object again: they go before the recorded answer is repeated.
 * @returns whether they are gone (or the deadline has passed: the answer stays the recorded one)
 */
async function tidyRepeatedHelperBuild(ctx: BuildContext, startedAt: number): Promise<boolean> {
  try {
    await deleteStagedImage(ctx.s3, ctx.spec.stagingBucket, ctx.buildId);
    await deleteProgress(ctx.s3, ctx.spec.stagingBucket!, ctx.buildId);
    return true;
  } catch (err) {
    ctx.log.step('wait', { waitingFor: `the staged objects of the repeated delivery to be removed (${(err as Error).message})` });
    return pastDeadline(startedAt);
  }
}

/** How often, and for how long, one isComplete looks again while the build waits for AWS (OPERATION_TIMING in types.ts). */
const POLL_STEP_MS = OPERATION_TIMING.isCompletePollStepSeconds * 1000;
const POLL_WINDOW_MS = OPERATION_TIMING.isCompletePollWindowSeconds * 1000;
const POLL_BUILD_MS = OPERATION_TIMING.isCompletePollBuildSeconds * 1000;

/**
 * Runs a build round, and while the build waits for AWS, runs it again every POLL_STEP_MS for up to
 * POLL_WINDOW_MS of this invocation: a state that changes within the window is acted on within a
 * step instead of at the waiter's next poll, and each invocation covers the window as well as the
 * waiter's interval, so that a build needs no more invocations than a plain poll every interval.
 * Each round reads the build's state back from AWS, as a round of the next invocation would. Only in
 * the build's first POLL_BUILD_MS (later waits are unusual ones), and the window never eats into the
 * time a failed round may need to remove the build (IS_COMPLETE_CLEANUP_MS).
 */
async function pollWithinInvocation<T>(log: StepLog, startedAt: number, round: () => Promise<T | string>): Promise<T | string> {
  const until = clock().now() + POLL_WINDOW_MS;
  for (;;) {
    const done = await round();
    if (typeof done !== 'string' || leftToTheWaiter(done) || clock().now() - startedAt >= POLL_BUILD_MS || clock().now() + POLL_STEP_MS > until
      || invocationTimeLeft() < POLL_STEP_MS + IS_COMPLETE_CLEANUP_MS) {
      return done;
    }
    log.step('wait', { waitingFor: done, lookAgainMs: POLL_STEP_MS });
    await clock().sleep(POLL_STEP_MS);
  }
}

/**
 * Whether a round's wait is left to the waiter's next poll rather than looked at again within the
 * invocation: EC2 showing or listing what the build made ("EC2 to ..."), and the AMI becoming
 * available. EC2's reads lag for seconds after a create (its tag filter longer than a read by id),
 * and the AMI is found by its tags: a round that looked again within that lag would make the create
 * again (a second RegisterImage, refused as a duplicate). The waiter's next poll comes after it.
 */
function leftToTheWaiter(waitingFor: string): boolean {
  return waitingFor.startsWith('EC2 to ') || /^AMI \S+ to become available$/.test(waitingFor);
}

/** Not complete yet; past the handler's deadline, the build fails with what it was waiting for. */
function notComplete(waitingFor: string, startedAt: number, log: StepLog): IsCompleteResponse {
  if (pastDeadline(startedAt)) {
    throw new BuildFailure(`The build did not finish within ${HANDLER_DEADLINE_MS / 60_000} minutes; it was still waiting for ${waitingFor}.`);
  }
  log.step('wait', { waitingFor });
  return { IsComplete: false };
}

type Attributes = { ImageId: string; SnapshotId: string; KernelId: string; ImageName: string };

/**
 * Helper strategy, one round: the helper writes and the handler snapshots the volume; once the
 * snapshot is complete, the helper is terminated, the AMI registered; once that is available,
 * duplicate snapshots and staged objects are removed, the build's completion recorded, the
 * progress object removed, and the build is done.
 * @returns the attributes when done, or what the build is waiting for
 */
async function advanceHelperToImage(ctx: BuildContext, state: BuildState, startedAt: number): Promise<Attributes | string> {
  const round = await advanceHelperBuild(ctx, state.InstanceId, startedAt);
  if (!round.done) {
    return round.waitingFor;
  }
  // The snapshot holds the image: the helper's work is done (its volumes go with it).
  if (!(await terminateHelper(ctx.ec2, round.instanceId, startedAt))) {
    return `EC2 to accept the termination of the helper instance ${round.instanceId}`;
  }
  const image = await ensureImage(ctx, round.snapshotId, undefined, (snapshotId) => recordedOnSnapshot(ctx, snapshotId));
  if (image.status === 'recorded') {
    await deleteStagedImage(ctx.s3, ctx.spec.stagingBucket, ctx.buildId);
    await deleteProgress(ctx.s3, ctx.spec.stagingBucket!, ctx.buildId);
    return named(ctx, image.attributes);
  }
  if (image.status !== 'available') {
    return imageWait(image);
  }
  const distributed = await distribute(ctx, image.imageId, round.snapshotId, 'new-build');
  if (distributed) {
    return distributed;
  }
  // The AMI is good: the rest is tidying up, which waits out any error (until the deadline)
  // rather than throwing away the AMI.
  try {
    const progress = await readProgress(ctx.s3, ctx.spec.stagingBucket!, ctx.buildId);
    if (await deleteDuplicateSnapshots(ctx, round.snapshotId, progress.snapshotIds ?? [], progress.snapshotCreatedAt) > 0) {
      return 'duplicate snapshots of the build to be deleted';
    }
    await deleteStagedImage(ctx.s3, ctx.spec.stagingBucket, ctx.buildId);
    // Recorded before the progress object goes: a repeated delivery that finds no progress finds the record.
    const done = await recordComplete(ctx, image.imageId, startedAt, progress.snapshotCreatedAt);
    if (typeof done === 'string') {
      return done;
    }
    await deleteProgress(ctx.s3, ctx.spec.stagingBucket!, ctx.buildId);
    return done;
  } catch (err) {
    return `the build's duplicate snapshots and staged objects to be removed and its completion recorded (${(err as Error).message})`;
  }
}

/**
 * Records the build complete on its AMI, read by its id (write-once: build-record.ts).
 * @returns the attributes CloudFormation gets, from the AMI as read by id, or what the build waits for
 */
async function recordComplete(ctx: BuildContext, imageId: string, startedAt: number, snapshotStartedAt?: number, blocks?: number, renamed = false): Promise<Attributes | string> {
  const image = await describeImageById(ctx.ec2, imageId);
  const snapshotId = image ? rootSnapshotOf(image) : undefined;
  if (image?.State !== 'available' || !snapshotId || !image.KernelId) {
    return `EC2 to show the available AMI ${imageId} by its id`;
  }
  if (renamed) {
    // The snapshot keeps the record of the build that wrote it; this build marks itself as one more
    // AMI on it, so that no Delete removes the snapshot while this AMI uses it.
    await markImageUser(ctx.ec2, snapshotId, ctx.buildId, imageId);
  }
  const record = await recordCompletion(ctx.ec2, { image, snapshotId, snapshotStartedAt }, startedAt, blocks, !renamed);
  ctx.log.step('record-complete', { imageId, snapshotId, recordedAt: record.stages[record.stages.length - 1]?.at });
  return { ImageId: imageId, SnapshotId: snapshotId, KernelId: image.KernelId, ImageName: image.Name ?? imageNameOf(ctx.spec, ctx.buildId) };
}

/**
 * Applies what the AMI offers beyond its disk (distribution.ts) to the available AMI, read by id. A
 * refusal (public access blocked, a key EC2 does not share, a deprecation time out of EC2's limits)
 * fails the build or Update.
 *
 * A build applies them before it records itself complete, and never after: a repeated delivery of
 * the build's event that runs on after a later Update (a second waiter execution polls on) must not
 * put the build's values back over the Update's. An Update that keeps the AMI (`update`) applies
 * them whatever the record says.
 *
 * A NotFound of the AMI or its snapshot right after the AMI was registered is EC2's lag ("Eventual
 * consistency in the Amazon EC2 API"): waited for while the AMI is young (isYoung).
 * @returns what the build waits for, or undefined once applied
 */
async function distribute(ctx: BuildContext, imageId: string, snapshotId: string, mode: 'new-build' | 'rename' | 'update'): Promise<string | undefined> {
  const image = await describeImageById(ctx.ec2, imageId);
  if (image?.State !== 'available') {
    return `EC2 to show the available AMI ${imageId} by its id`;
  }
  if (mode !== 'update' && isRecordedComplete(image.Tags)) {
    return undefined;
  }
  try {
    await applyDistribution(ctx, image, snapshotId, mode === 'new-build');
  } catch (err) {
    if (isNotFound(err) && isYoung(timeOf(image.CreationDate))) {
      return `EC2 to know AMI ${imageId} and its snapshot ${snapshotId} everywhere (${(err as Error).message})`;
    }
    throw err;
  }
  return undefined;
}

/** EBS-direct strategy, one round: wait for the uploaded snapshot, register the AMI, wait for it, record the build complete. */
async function advanceDirectToImage(ctx: BuildContext, snapshotId: string, startedAt: number, blocks?: number): Promise<Attributes | string> {
  const snapshot = await describeOwnSnapshot(ctx.ec2, snapshotId, ctx.buildId, startedAt);
  if (!snapshot) {
    return `EC2 to show the new snapshot ${snapshotId}`;
  }
  const waitingFor = snapshotWait(snapshot);
  ctx.log.stage('snapshot', { snapshotId, progressPercent: snapshot.State === 'completed' ? 100 : progressPercentOf(snapshot.Progress) });
  if (waitingFor) {
    return waitingFor;
  }
  const image = await ensureImage(ctx, snapshotId, timeOf(snapshot.StartTime), (id) => recordedOnSnapshot(ctx, id));
  return finishImage(ctx, image, snapshotId, 'new-build', (imageId) => recordComplete(ctx, imageId, startedAt, timeOf(snapshot.StartTime), blocks));
}

/**
 * The end of a build whose snapshot holds the image (EBS direct, or a rename): its AMI available,
 * distributed as the properties say, and the build recorded complete.
 * @returns the attributes when done, or what the build is waiting for
 */
async function finishImage(
  ctx: BuildContext,
  image: ImageProgress,
  snapshotId: string,
  mode: 'new-build' | 'rename',
  record: (imageId: string) => Promise<Attributes | string>,
): Promise<Attributes | string> {
  if (image.status === 'recorded') {
    return named(ctx, image.attributes);
  }
  if (image.status !== 'available') {
    return imageWait(image);
  }
  const distributed = await distribute(ctx, image.imageId, snapshotId, mode);
  if (distributed) {
    return distributed;
  }
  try {
    return await record(image.imageId);
  } catch (err) {
    // The AMI is good: a record that cannot be written yet is waited for (until the deadline).
    return `the completion of the build to be recorded on AMI ${image.imageId} (${(err as Error).message})`;
  }
}

/**
 * The answer of a build whose snapshot, read by its id, carries the complete record (written with
 * the AMI's before the first complete answer): what a repeated delivery answers once the AMI it
 * would look for has been deregistered by the build's own Delete.
 */
async function recordedOnSnapshot(ctx: BuildContext, snapshotId: string): Promise<Attributes | undefined> {
  const snapshot = await describeSnapshotById(ctx.ec2, snapshotId);
  const record = recordOf(snapshot?.Tags);
  if (record?.outcome !== 'complete' || !record.imageId) {
    return undefined;
  }
  return { ImageId: record.imageId, SnapshotId: record.snapshotId ?? snapshotId, KernelId: ctx.spec.kernelId, ImageName: imageNameOf(ctx.spec, ctx.buildId) };
}

/**
 * A rename, one round: EC2 cannot rename an AMI, so the snapshot of the resource's current AMI is
 * registered again under the new name (a new AMI, no new disk); CloudFormation's cleanup Delete of
 * the old physical id then deregisters the old AMI and keeps the snapshot, which this AMI uses.
 */
async function advanceRenameToImage(ctx: BuildContext, snapshotId: string, startedAt: number): Promise<Attributes | string> {
  const image = await ensureImage(ctx, snapshotId, undefined, async (id) => {
    const imageId = imageUserOf((await describeSnapshotById(ctx.ec2, id))?.Tags, ctx.buildId);
    return imageId ? { ImageId: imageId, SnapshotId: id, KernelId: ctx.spec.kernelId, ImageName: imageNameOf(ctx.spec, ctx.buildId) } : undefined;
  });
  return finishImage(ctx, image, snapshotId, 'rename', (imageId) => recordComplete(ctx, imageId, startedAt, undefined, undefined, true));
}

/** Attributes with the AMI's name, which records and earlier releases' answers may lack. */
function named(ctx: BuildContext, attributes: UnikernelAmiAttributes): Attributes {
  return { ...attributes, ImageName: attributes.ImageName ?? imageNameOf(ctx.spec, ctx.buildId) };
}

function imageWait(image: Exclude<ImageProgress, { status: 'recorded' }>): string {
  return image.status === 'registering' ? 'EC2 to list the AMI just registered' : `AMI ${image.imageId} to become available`;
}

/** Adds what could not be removed, and who will remove it, to a failure. */
function withLeftovers(err: unknown, left: readonly Leftover[], whoRemovesThem: string): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (left.length === 0) {
    return new BuildFailure(message);
  }
  return new BuildFailure(`${message.replace(/[.\s]+$/, '')}. Not removed yet: ${describeLeftovers(left)}; ${whoRemovesThem}.`);
}

/**
 * An Update. Failed builds of the resource (a failed Update's, whose build id CloudFormation
 * never kept) are removed first. Then:
 * - nothing that makes the disk or AMI changed (tags, removal policy, helper settings): the AMI
 *   stays, its tags are updated;
 * - the properties are those of a build of this resource that still exists (a rollback sends the
 *   old properties back while the old build is not deleted yet): that build is returned, and
 *   CloudFormation deletes the other;
 * - otherwise a new build.
 */
async function startUpdate(event: OnEventRequest): Promise<OnEventResponse> {
  const props = event.ResourceProperties;
  const oldProps = event.OldResourceProperties ?? props;
  const physicalId = event.PhysicalResourceId ?? '';
  const log = new StepLog(isBuildId(physicalId) ? physicalId : buildIdOf(event));
  const migratedAt = isBuildId(physicalId)
    ? await migrateBuildTags(clients.ec2, physicalId, event.StackId, oldProps.Strategy !== BuildStrategyKind.EBS_DIRECT, clock().now(), log)
    : undefined;
  // Neither the build CloudFormation holds nor the one this event makes (a repeated delivery of
  // this Update must not sweep the build its first delivery started).
  await sweepFailedBuilds(clients, event.StackId, event.LogicalResourceId, [props, oldProps], new Set([physicalId, buildIdOf(event)]), log);
  const changed = changedRebuildProperties(oldProps, props);
  const renamed = imageNameChanged(oldProps, props);
  if (changed.length === 0 && !renamed && isBuildId(physicalId)) {
    return retag(event, physicalId, log, migratedAt);
  }
  const existing = await findExistingBuild(event, physicalId, log);
  if (existing) {
    log.step('return-existing-build', { existingBuildId: existing, previousBuildId: physicalId, changed: [...changed, ...(renamed ? ['ImageName'] : [])].join(',') });
    return retag(event, existing, log);
  }
  if (changed.length === 0 && isBuildId(physicalId)) {
    return startRename(event, physicalId, log);
  }
  log.step('rebuild', { previousBuildId: physicalId, changed: changed.join(',') });
  return startBuild(event);
}

/**
 * An Update that changes only the AMI's name: a new build id (physical id) whose AMI is the current
 * build's snapshot registered again under the new name (advanceRenameToImage).
 */
async function startRename(event: OnEventRequest, currentBuildId: string, log: StepLog): Promise<OnEventResponse> {
  const buildId = buildIdOf(event);
  const { attributes } = await describeBuiltImage(clients.ec2, currentBuildId);
  log.step('rename', { previousBuildId: currentBuildId, newBuildId: buildId, snapshotId: attributes.SnapshotId, imageName: imageNameOf(parseProperties(event.ResourceProperties), buildId) });
  return { PhysicalResourceId: buildId, BuildState: { Action: BuildAction.BUILD, SourceSnapshotId: attributes.SnapshotId, StartedAt: clock().now() } };
}

/**
 * A finished build of the resource made from the event's properties (a rollback's old build). The
 * tag-filtered read may be stale for a while (an AMI left out, or shown pending): the build
 * CloudFormation holds (the event's physical id) is finished, so as long as that one does not show
 * as available either, the read is not trusted to say "none", and is made again, for at most
 * EXISTING_BUILD_CONFIRM_MS, before a new build starts.
 */
async function findExistingBuild(event: OnEventRequest, physicalId: string, log: StepLog): Promise<string | undefined> {
  const startedAt = clock().now();
  for (let wait = 0; ; wait++) {
    const existing = await findBuildByProperties(clients.ec2, resourceFilters(event.StackId, event.LogicalResourceId), propertiesHash(event.ResourceProperties));
    if (existing || !isBuildId(physicalId)) {
      return existing;
    }
    const current = await findBuildImages(clients.ec2, physicalId);
    const delay = EXISTING_BUILD_WAITS_MS[Math.min(wait, EXISTING_BUILD_WAITS_MS.length - 1)];
    if (current.some((image) => image.State === 'available') || clock().now() - startedAt + delay > EXISTING_BUILD_CONFIRM_MS || delay + RECORD_LOOKUP_RESERVE_MS > invocationTimeLeft()) {
      return undefined;
    }
    log.step('wait', { waitingFor: `EC2 to show the AMI of build ${physicalId} (the reads of the resource's builds may be stale)` });
    await clock().sleep(delay);
  }
}
const EXISTING_BUILD_WAITS_MS = [10_000, 20_000, 30_000];
/** EC2's documented lag ("a couple of seconds ... up to a few minutes"), as DELETE_UNSEEN_CONFIRM_MS. */
const EXISTING_BUILD_CONFIRM_MS = 3 * 60_000;

/**
 * An Update that keeps the AMI, after its tags: what the AMI offers beyond its disk is brought to the
 * event's properties (distribution.ts); a rollback Update brings the old values back the same way.
 */
async function continueRetag(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  const buildId = event.PhysicalResourceId;
  const log = new StepLog(buildId);
  const startedAt = event.BuildState.StartedAt ?? clock().now();
  const ctx = buildContext(clients, buildId, event, log);
  try {
    const { attributes } = await describeBuiltImage(clients.ec2, buildId);
    const waiting = await distribute(ctx, attributes.ImageId, attributes.SnapshotId, 'update');
    if (waiting) {
      return notComplete(waiting, startedAt, log);
    }
    return { IsComplete: true, Data: { ...attributes, ImageName: attributes.ImageName ?? imageNameOf(ctx.spec, buildId) } };
  } catch (err) {
    if (isRetryableError(err) && !pastDeadline(startedAt)) {
      log.step('transient-error', { error: (err as Error).message });
      return { IsComplete: false };
    }
    throw err;
  }
}

/** The build's AMI stays: checked first (it may have been deregistered by hand), then its tags are updated. */
async function retag(event: OnEventRequest, buildId: string, log: StepLog, migratedAt?: number): Promise<OnEventResponse> {
  const spec = parseProperties(event.ResourceProperties);
  const { attributes, image } = await describeBuiltImage(clients.ec2, buildId);
  const tags = buildTags({ buildId, stackId: event.StackId, logicalId: event.LogicalResourceId, propertiesHash: propertiesHash(event.ResourceProperties) }, spec);
  const removedKeys = await retagImage(clients.ec2, image, attributes.SnapshotId, tags, migratedAt);
  log.step('update-tags', { imageId: attributes.ImageId, snapshotId: attributes.SnapshotId, removedKeys: removedKeys.join(',') });
  return { PhysicalResourceId: buildId, Data: attributes, BuildState: { Action: BuildAction.RETAG, StartedAt: clock().now() } };
}

/** Delete: the physical id stays; a physical id that is no build (e.g. the framework's failed-Create marker) has nothing to remove. */
async function startDelete(event: OnEventRequest): Promise<OnEventResponse> {
  const physicalId = event.PhysicalResourceId ?? '';
  if (!isBuildId(physicalId)) {
    return { PhysicalResourceId: physicalId, BuildState: { Action: BuildAction.DELETE } };
  }
  const log = new StepLog(physicalId);
  log.stage('delete-started', { stackId: event.StackId, logicalId: event.LogicalResourceId, requestType: event.RequestType, strategy: event.ResourceProperties.Strategy });
  await migrateBuildTags(clients.ec2, physicalId, event.StackId, event.ResourceProperties.Strategy !== BuildStrategyKind.EBS_DIRECT, clock().now(), log);
  // Decided once: the AMI may be deregistered in this pass, and later passes must still treat the build as finished.
  const finished = await isFinishedBuild(clients.ec2, physicalId);
  await sweepFailedBuilds(clients, event.StackId, event.LogicalResourceId, [event.ResourceProperties], new Set([physicalId, buildIdOf(event)]), log);
  // What this pass leaves goes to the later passes by id: the AMI it deregistered no longer leads
  // to its snapshot (held for a moment after the deregistration), and tag lookups may lag.
  const found: PassFindings = {};
  const left = await removeBuildPass(clients, buildToDelete(event, physicalId, finished), log, undefined, found);
  const ids = (kind: Leftover['kind']) => left.filter((l) => l.kind === kind).map((l) => l.id);
  const times = left.map((l) => l.createdAt).filter((t): t is number => t !== undefined);
  return {
    PhysicalResourceId: physicalId,
    BuildState: {
      Action: BuildAction.DELETE,
      BuildFinished: finished,
      StartedAt: clock().now(),
      SnapshotIds: ids('snapshot'),
      InstanceIds: ids('instance'),
      LeftSince: times.length > 0 ? Math.max(...times) : undefined,
      ImageSeen: found.image,
    },
  };
}

function buildToDelete(event: OnEventRequest, buildId: string, finished: boolean, state?: BuildState): BuildToRemove {
  return {
    buildId,
    props: event.ResourceProperties,
    retain: event.ResourceProperties.RemovalPolicy !== 'destroy',
    finished,
    remover: 'delete',
    known: state ? { snapshotIds: state.SnapshotIds ?? [], instanceIds: state.InstanceIds ?? [], createdAt: state.LeftSince } : undefined,
  };
}

async function continueDelete(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  const physicalId = event.PhysicalResourceId;
  if (!isBuildId(physicalId)) {
    return { IsComplete: true };
  }
  const log = new StepLog(physicalId);
  const startedAt = event.BuildState.StartedAt ?? clock().now();
  const found: PassFindings = {};
  const left = await removeBuildPass(clients, buildToDelete(event, physicalId, Boolean(event.BuildState.BuildFinished), event.BuildState), log, undefined, found);
  if (left.length === 0) {
    // Nothing left, as far as this pass could see. If no pass has seen the build's AMI by its id,
    // the reads may have been stale (an AMI or snapshot left out, or NotFound by id): the removal
    // goes on until EC2's documented lag is over before it answers that the build is gone.
    if (event.BuildState.ImageSeen || found.image || clock().now() - startedAt >= DELETE_UNSEEN_CONFIRM_MS) {
      log.stage('deleted');
      return { IsComplete: true };
    }
    log.step('wait', { waitingFor: 'reads of the build that may be stale to catch up (no pass has seen its AMI)' });
    return { IsComplete: false };
  }
  const refused = left.filter((l) => l.kind === 'error' && !l.transient);
  if (refused.length > 0) {
    // A denied call is no reason to wait: it will be denied again. Never "nothing left" either.
    const advice = refused.every((l) => l.advice) ? [...new Set(refused.map((l) => l.advice))].join(' ') : 'Fix the handler\'s permissions, then delete again.';
    throw new BuildFailure(`Could not remove build ${physicalId}: ${describeLeftovers(refused)}. ${advice}`);
  }
  if (pastDeadline(startedAt)) {
    throw new BuildFailure(`Could not remove everything of build ${physicalId} within ${HANDLER_DEADLINE_MS / 60_000} minutes; left: ${describeLeftovers(left)}. Delete the stack again, or remove them by hand.`);
  }
  return { IsComplete: false };
}
