/**
 * The custom-resource handler of Custom::MirageUnikernelAmi, run by the CDK provider framework:
 * onEvent starts the work of a Create, Update or Delete, and isComplete is called every ~15 s until
 * the work is done. State is read back from AWS on every call, so every step may repeat.
 */
import { DiskImage } from '../../disk-image';
import { BuildStrategyKind } from '../types';
import { buildIdOf, isBuildId } from './build-id';
import { abandonBuild, isFinishedBuild, removeBuild } from './cleanup';
import { InvocationContext, runInvocation } from './clock';
import { AwsClients, clients } from './clients';
import { uploadSnapshotDirect } from './ebs-direct';
import {
  BuildAction,
  BuildState,
  IsCompleteRequest,
  IsCompleteResponse,
  OnEventRequest,
  OnEventResponse,
} from './events';
import { advanceHelperBuild, deleteVolume, HelperContext, launchHelper } from './helper-instance';
import { describeBuiltImage, findBuildImages, findBuildSnapshots, registerImageWhenReady, updateImageTags } from './image';
import { diskImageFor, readKernel } from './kernel';
import { StepLog } from './log';
import { buildTags, changedRebuildProperties, parseProperties, userTagList } from './properties';
import { deleteStagedImage, stageImage } from './staging';

/** The Lambda timeouts of onEvent and isComplete (build-infrastructure.ts), for calls without a Lambda context. */
const ON_EVENT_TIMEOUT_MS = 15 * 60_000;
const IS_COMPLETE_TIMEOUT_MS = 5 * 60_000;
/** Time kept back at the end of an invocation to report its outcome instead of being cut off. */
const INVOCATION_MARGIN_MS = 20_000;

export async function onEvent(event: OnEventRequest, context?: InvocationContext): Promise<OnEventResponse> {
  return runInvocation(context, ON_EVENT_TIMEOUT_MS, INVOCATION_MARGIN_MS, () => startRequest(event));
}

export async function isComplete(event: IsCompleteRequest, context?: InvocationContext): Promise<IsCompleteResponse> {
  return runInvocation(context, IS_COMPLETE_TIMEOUT_MS, INVOCATION_MARGIN_MS, () => continueRequest(event));
}

async function startRequest(event: OnEventRequest): Promise<OnEventResponse> {
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
      return { IsComplete: true, Data: await describeBuiltImage(clients.ec2, event.PhysicalResourceId) };
    case BuildAction.DELETE:
      return continueDelete(event);
    default:
      throw new Error(`isComplete got no BuildState from onEvent (got ${JSON.stringify(event.BuildState)}); it must run behind the same provider as onEvent.`);
  }
}

/** Everything a build step needs; the helper strategy's steps take the HelperContext part. */
type BuildContext = HelperContext & Pick<AwsClients, 'ebs'>;

function buildContext(aws: AwsClients, buildId: string, event: OnEventRequest, log: StepLog): BuildContext {
  const spec = parseProperties(event.ResourceProperties);
  return { ...aws, buildId, spec, tags: buildTags(buildId, event.StackId, spec), log };
}

/**
 * Create, or an Update that changes the disk or AMI: a new build under a new physical id, so that
 * CloudFormation deletes the old build once the stack update succeeds.
 */
async function startBuild(event: OnEventRequest): Promise<OnEventResponse> {
  const buildId = buildIdOf(event);
  const log = new StepLog(buildId);
  const ctx = buildContext(clients, buildId, event, log);
  // Fetch and check the kernel before anything is created: a refused kernel leaves nothing behind.
  const kernel = await readKernel(ctx.s3, ctx.spec);
  const image = diskImageFor(kernel, ctx.spec);
  log.step('lay-out-disk', { kernelBytes: kernel.length, nonZeroBytes: image.nonZeroBytes, layout: image.layout });
  try {
    const state = ctx.spec.strategy === BuildStrategyKind.HELPER_INSTANCE ? await startHelperBuild(ctx, image) : await startDirectBuild(ctx, image);
    return { PhysicalResourceId: buildId, BuildState: state };
  } catch (err) {
    // Clean up here: the provider framework ignores the Delete that follows a failed Create, and
    // the build id of a failed Update never reaches CloudFormation.
    return abandonBuild(clients, buildId, event.ResourceProperties, log, err);
  }
}

async function startHelperBuild(ctx: HelperContext, image: DiskImage): Promise<BuildState> {
  await stageImage(ctx, image);
  const { instanceId, volumeId } = await launchHelper(ctx);
  return { Action: BuildAction.BUILD, InstanceId: instanceId, VolumeId: volumeId };
}

async function startDirectBuild(ctx: BuildContext, image: DiskImage): Promise<BuildState> {
  const result = await uploadSnapshotDirect(ctx.ebs, ctx.ec2, {
    image,
    buildId: ctx.buildId,
    volumeSizeGiB: ctx.spec.volumeSizeGiB,
    tags: [...ctx.tags],
    encrypted: ctx.spec.encrypted,
    kmsKeyArn: ctx.spec.kmsKeyArn,
    description: `${ctx.spec.name} unikernel disk (mirage-unikernel-ami build ${ctx.buildId})`,
    log: ctx.log,
  });
  ctx.log.step('upload-snapshot-direct', { snapshotId: result.snapshotId, blocks: result.blocksSent, apiCalls: result.apiCalls });
  return { Action: BuildAction.BUILD, SnapshotId: result.snapshotId };
}

async function continueBuild(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  const buildId = event.PhysicalResourceId;
  const log = new StepLog(buildId);
  const ctx = buildContext(clients, buildId, event, log);
  const state = event.BuildState;
  try {
    const snapshotId = state.SnapshotId ?? (await advanceHelperBuild(ctx, state.InstanceId!, state.VolumeId!));
    const attributes = snapshotId ? await registerImageWhenReady(ctx, snapshotId) : undefined;
    if (!attributes) {
      return { IsComplete: false };
    }
    if (state.VolumeId) {
      await deleteVolume(ctx.ec2, state.VolumeId);
      await deleteStagedImage(ctx.s3, ctx.spec.stagingBucket, buildId);
    }
    log.step('complete', { ...attributes });
    return { IsComplete: true, Data: attributes };
  } catch (err) {
    return abandonBuild(clients, buildId, event.ResourceProperties, log, err);
  }
}

/** An Update that changes neither disk nor AMI (tags, removal policy, helper settings): the AMI stays. */
async function startUpdate(event: OnEventRequest): Promise<OnEventResponse> {
  const changed = changedRebuildProperties(event.OldResourceProperties ?? event.ResourceProperties, event.ResourceProperties);
  if (changed.length > 0 || !isBuildId(event.PhysicalResourceId)) {
    new StepLog(buildIdOf(event)).step('rebuild', { previousBuildId: event.PhysicalResourceId, changed: changed.join(',') });
    return startBuild(event);
  }
  const buildId = event.PhysicalResourceId;
  const log = new StepLog(buildId);
  const spec = parseProperties(event.ResourceProperties);
  const newKeys = new Set(userTagList(spec.userTags).map((tag) => tag.Key));
  const removedKeys = userTagList(event.OldResourceProperties?.Tags ?? {})
    .map((tag) => tag.Key)
    .filter((key) => !newKeys.has(key));
  const images = await findBuildImages(clients.ec2, buildId);
  const snapshots = await findBuildSnapshots(clients.ec2, buildId);
  const resourceIds = [...images.map((i) => i.ImageId!), ...snapshots.map((s) => s.SnapshotId!)];
  await updateImageTags(clients.ec2, resourceIds, buildTags(buildId, event.StackId, spec), removedKeys);
  log.step('update-tags', { resources: resourceIds.join(','), removedKeys: removedKeys.join(',') });
  return { PhysicalResourceId: buildId, Data: await describeBuiltImage(clients.ec2, buildId), BuildState: { Action: BuildAction.RETAG } };
}

/** Delete: the physical id stays; a physical id that is no build (e.g. the framework's failed-Create marker) has nothing to remove. */
async function startDelete(event: OnEventRequest): Promise<OnEventResponse> {
  const physicalId = event.PhysicalResourceId ?? '';
  if (!isBuildId(physicalId)) {
    return { PhysicalResourceId: physicalId, BuildState: { Action: BuildAction.DELETE } };
  }
  // Decided once: the AMI may be deregistered in this pass, and later passes must still skip the helper cleanup.
  const finished = await isFinishedBuild(clients, physicalId);
  await removeBuild(clients, physicalId, event.ResourceProperties, new StepLog(physicalId), !finished);
  return { PhysicalResourceId: physicalId, BuildState: { Action: BuildAction.DELETE, BuildFinished: finished } };
}

async function continueDelete(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  const physicalId = event.PhysicalResourceId;
  if (!isBuildId(physicalId)) {
    return { IsComplete: true };
  }
  const removeTransient = !event.BuildState.BuildFinished;
  return { IsComplete: await removeBuild(clients, physicalId, event.ResourceProperties, new StepLog(physicalId), removeTransient) };
}
