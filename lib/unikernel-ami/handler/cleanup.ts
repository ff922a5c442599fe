/**
 * Removing a build: on Delete, when a build fails part-way, and for the failed builds a later event
 * of the same resource finds ("hands the rest to the next event").
 *
 * What this invocation created is removed by the id its create call returned (tag filters lag); what
 * earlier invocations made is found by the build's tags and by its progress object. A removal pass
 * reports what is still there; cleanup repeats passes, with short waits, until nothing is left or
 * the invocation's time is up. AccessDenied never counts as "nothing left".
 */
import { CreateTagsCommand, DescribeInstancesCommand, DescribeVolumesCommand, DeleteVolumeCommand, EC2Client, Filter, Instance } from '@aws-sdk/client-ec2';
import { AmiRemovalKind, BuildStrategyKind, RETAINED_TAG, UnikernelAmiProperties } from '../types';
import { AwsClients } from './clients';
import { clock, invocationTimeLeft } from './clock';
import { terminateHelper } from './helper-instance';
import {
  buildIdOfTags,
  deleteSnapshot,
  deregisterImage,
  describeAll,
  findBuildImages,
  findBuildSnapshots,
  findImages,
  findSnapshots,
  PAGE_SIZE,
  removeById,
  rootSnapshotOf,
  timeOf,
} from './image';
import { StepLog } from './log';
import { deleteProgress, HelperProgress, readProgress } from './progress';
import { buildFilter, resourceFilters } from './properties';
import { isRetryableError, withRetry } from './retry';
import { deleteStagedImage } from './staging';

/** Something of a build that is still there after a removal pass. */
export interface Leftover {
  readonly kind: 'instance' | 'volume' | 'snapshot' | 'image' | 'staged objects' | 'error';
  readonly id: string;
  /** When it was made, if EC2 said (a later pass needs it to tell EC2's lag from "gone"). */
  readonly createdAt?: number;
  /** For an error: whether another attempt may succeed (throttling, a server error) or not (AccessDenied). */
  readonly transient?: boolean;
}

/** What the handler knows of a build to remove. */
export interface BuildToRemove {
  readonly buildId: string;
  /** The build's properties (its strategy, staging bucket and removal policy). */
  readonly props: UnikernelAmiProperties;
  /** Keep one available AMI and its root snapshot (the removal policy retain, for a finished build). */
  readonly retain: boolean;
  /**
   * The build had finished (an available AMI) when its removal began: it removed its staged
   * objects then, and its staging bucket may be gone since (a stack that switched to ebsDirect).
   */
  readonly finished: boolean;
  /** Ids this invocation's create calls returned (they may not be listed by tag yet), with when they were made. */
  readonly known?: KnownIds;
}

export interface KnownIds {
  readonly instanceIds?: readonly string[];
  readonly snapshotIds?: readonly string[];
  readonly createdAt?: number;
}

const LIVE_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

/** The instances that match `filters` and are not terminated yet, every page. */
function findLiveInstances(ec2: EC2Client, filters: Filter[]): Promise<Instance[]> {
  return describeAll('ec2:DescribeInstances', async (NextToken) => {
    const response = await ec2.send(new DescribeInstancesCommand({
      Filters: [...filters, { Name: 'instance-state-name', Values: LIVE_INSTANCE_STATES }],
      MaxResults: PAGE_SIZE,
      NextToken,
    }));
    return { items: (response.Reservations ?? []).flatMap((r) => r.Instances ?? []), next: response.NextToken };
  });
}

function isHelperBuild(props: UnikernelAmiProperties): boolean {
  return props.Strategy !== BuildStrategyKind.EBS_DIRECT;
}

/**
 * One removal pass: the AMIs (deregistered, but for the one `retain` keeps), the snapshots, and
 * for a helper build its instances, volumes and staged objects (even for a finished build: an
 * instance that escaped a repeated Create still carries the build's tags).
 * @returns what is still there
 */
export async function removeBuildPass(aws: AwsClients, build: BuildToRemove, log: StepLog, removed = new Set<string>()): Promise<Leftover[]> {
  const left: Leftover[] = [];
  const helper = isHelperBuild(build.props);
  const bucket = helper && !build.finished ? build.props.StagingBucket : undefined;
  // Each part goes on when another fails (a denied lookup, throttling): what one part cannot do is
  // reported, and the others still remove what they can.
  const part = async (name: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      log.step('remove-build-error', { part: name, error: (err as Error).message });
      left.push({ kind: 'error', id: describeError(err), transient: isRetryableError(err) });
    }
  };
  let progress: HelperProgress = {};
  if (bucket) {
    await part('progress', async () => {
      progress = await readProgress(aws.s3, bucket, build.buildId).catch(noSuchBucket);
    });
  }
  const known: KnownIds = {
    instanceIds: [...(build.known?.instanceIds ?? []), ...(progress.instanceId ? [progress.instanceId] : [])],
    snapshotIds: [...(build.known?.snapshotIds ?? []), ...(progress.snapshotIds ?? [])],
    createdAt: build.known?.createdAt ?? progress.startedAt,
  };

  let keptSnapshot: string | undefined;
  await part('images', async () => {
    const images = await findBuildImages(aws.ec2, build.buildId);
    const kept = build.retain ? images.find((image) => image.State === 'available') : undefined;
    if (kept) {
      keptSnapshot = rootSnapshotOf(kept);
      // Once marked, the role may change their tags no more (build-infrastructure.ts denyOnRetained).
      if (!(kept.Tags ?? []).some((tag) => tag.Key === RETAINED_TAG)) {
        await markRetained(aws.ec2, [kept.ImageId!, keptSnapshot!], log);
      }
    }
    for (const image of images.filter((i) => i !== kept)) {
      if (await deregisterImage(aws.ec2, image.ImageId!, timeOf(image.CreationDate))) {
        log.step('deregister-image', { imageId: image.ImageId });
      } else {
        left.push({ kind: 'image', id: image.ImageId!, createdAt: timeOf(image.CreationDate) });
      }
    }
  });
  // What this invocation knows by id needs no lookup (lookups lag, or may be denied). Never the
  // retained AMI's snapshot; should the AMI not be listed yet, EC2 refuses to delete the snapshot
  // of a registered AMI (InvalidSnapshot.InUse) anyway.
  await part('snapshots by id', async () => {
    for (const snapshotId of known.snapshotIds ?? []) {
      if (snapshotId !== keptSnapshot) {
        await removeSnapshot(aws.ec2, snapshotId, known.createdAt, removed, left, log);
      }
    }
  });
  await part('snapshots by tag', async () => {
    for (const snapshot of await findBuildSnapshots(aws.ec2, build.buildId)) {
      if (snapshot.SnapshotId !== keptSnapshot && !(known.snapshotIds ?? []).includes(snapshot.SnapshotId!)) {
        await removeSnapshot(aws.ec2, snapshot.SnapshotId!, timeOf(snapshot.StartTime), removed, left, log);
      }
    }
  });
  if (helper) {
    await part('helper', async () => {
      left.push(...(await removeHelperResources(aws.ec2, build.buildId, known, removed, log)));
    });
  }
  if (bucket) {
    // Whatever else is left, EC2 lists it by the build's tags from now on; the staged objects and
    // the progress object go now, or nothing would ever find them again.
    await part('staged objects', async () => {
      await deleteStagedImage(aws.s3, bucket, build.buildId);
      await deleteProgress(aws.s3, bucket, build.buildId);
    });
  }
  log.step(build.retain ? 'remove-build-retaining-image' : 'remove-build', { left: left.map((l) => l.id).join(',') });
  return left;
}

/**
 * Deletes one snapshot, once per removal: `removed` remembers what earlier passes deleted, whose
 * NotFound would otherwise look like the lag of a new snapshot.
 */
async function removeSnapshot(ec2: EC2Client, snapshotId: string, createdAt: number | undefined, removed: Set<string>, left: Leftover[], log: StepLog): Promise<void> {
  if (removed.has(snapshotId)) {
    return;
  }
  if (await deleteSnapshot(ec2, snapshotId, createdAt)) {
    removed.add(snapshotId);
    log.step('delete-snapshot', { snapshotId });
  } else {
    left.push({ kind: 'snapshot', id: snapshotId, createdAt });
  }
}

function noSuchBucket(err: unknown): HelperProgress {
  if ((err as Error).name === 'NoSuchBucket') {
    return {};
  }
  throw err;
}

/**
 * The Delete of a retained build tags its AMI and snapshot as retained: they are no longer the
 * resource's, and a later rollback must not take them back. Best effort: a failure only means a
 * rollback could adopt the AMI again, which is harmless, so it does not fail the Delete.
 */
async function markRetained(ec2: EC2Client, resources: string[], log: StepLog): Promise<void> {
  try {
    await withRetry('ec2:CreateTags', () => ec2.send(new CreateTagsCommand({ Resources: resources, Tags: [{ Key: RETAINED_TAG, Value: 'true' }] })));
  } catch (err) {
    log.step('mark-retained-failed', { resources: resources.join(','), error: (err as Error).message });
  }
}

/**
 * Terminates the build's instances (by the ids this invocation knows, and by the build's tag) and
 * deletes its volumes that are not attached. A volume attached to a terminating helper with
 * DeleteOnTermination goes with it.
 */
async function removeHelperResources(ec2: EC2Client, buildId: string, known: KnownIds, removed: Set<string>, log: StepLog): Promise<Leftover[]> {
  const left: Leftover[] = [];
  const instances = await findLiveInstances(ec2, [buildFilter(buildId)]);
  const terminating = new Set<string>();
  const toTerminate = new Map<string, number | undefined>();
  for (const instance of instances) {
    if (instance.State?.Name === 'shutting-down') {
      terminating.add(instance.InstanceId!);
    } else {
      toTerminate.set(instance.InstanceId!, timeOf(instance.LaunchTime));
    }
  }
  for (const id of known.instanceIds ?? []) {
    if (!terminating.has(id) && !toTerminate.has(id) && !removed.has(id)) {
      toTerminate.set(id, known.createdAt);
    }
  }
  for (const [instanceId, launchedAt] of toTerminate) {
    if (await terminateHelper(ec2, instanceId, launchedAt)) {
      terminating.add(instanceId);
      removed.add(instanceId);
      log.step('terminate-helper', { instanceId });
    } else {
      left.push({ kind: 'instance', id: instanceId, createdAt: launchedAt });
    }
  }
  const volumes = await describeAll('ec2:DescribeVolumes', async (NextToken) => {
    const response = await ec2.send(new DescribeVolumesCommand({ Filters: [buildFilter(buildId)], MaxResults: PAGE_SIZE, NextToken }));
    return { items: response.Volumes, next: response.NextToken };
  });
  for (const volume of volumes) {
    const attachment = volume.Attachments?.[0];
    if (volume.State === 'available' || volume.State === 'error') {
      // A volume outside a launch mapping (made by an earlier version of the handler).
      if (await removeById('ec2:DeleteVolume', () => ec2.send(new DeleteVolumeCommand({ VolumeId: volume.VolumeId })), timeOf(volume.CreateTime))) {
        log.step('delete-volume', { volumeId: volume.VolumeId });
      } else {
        left.push({ kind: 'volume', id: volume.VolumeId! });
      }
    } else if (volume.State === 'in-use' && !(attachment?.DeleteOnTermination && terminating.has(attachment.InstanceId ?? ''))) {
      left.push({ kind: 'volume', id: volume.VolumeId! });
    }
  }
  return left;
}

/** Time a cleanup keeps for reporting its outcome. */
const CLEANUP_MARGIN_MS = 15_000;
/** Waits between removal passes: a just-deregistered AMI releases its snapshot within seconds. */
const CLEANUP_WAITS_MS = [5_000, 10_000, 20_000, 30_000];

/**
 * Removal passes until nothing is left or the time is up (at most `budgetMs`, never past the
 * invocation's time). Errors of a pass (throttling, a denied call) are reported as leftovers and
 * the next pass tries again.
 * @returns what is left; empty when the build is gone
 */
export async function removeBuild(aws: AwsClients, build: BuildToRemove, log: StepLog, budgetMs: number): Promise<Leftover[]> {
  const endsAt = clock().now() + Math.min(budgetMs, invocationTimeLeft() - CLEANUP_MARGIN_MS);
  const removed = new Set<string>();
  for (let pass = 0; ; pass++) {
    const left = await removeBuildPass(aws, build, log, removed);
    const wait = CLEANUP_WAITS_MS[Math.min(pass, CLEANUP_WAITS_MS.length - 1)];
    if (left.length === 0 || clock().now() + wait > endsAt) {
      return left;
    }
    await clock().sleep(wait);
  }
}

function describeError(err: unknown): string {
  const e = err as { name?: string; message?: string };
  return `${e.name ?? 'Error'}: ${e.message ?? String(err)}`;
}

/** A one-line account of leftovers, for a failure message. */
export function describeLeftovers(left: readonly Leftover[]): string {
  return left.map((l) => (l.kind === 'error' ? l.id : `${l.kind} ${l.id}`)).join(', ');
}

/** A build with an available AMI has finished: it has already removed its helper and staged objects. */
export async function isFinishedBuild(ec2: EC2Client, buildId: string): Promise<boolean> {
  return (await findBuildImages(ec2, buildId)).some((image) => image.State === 'available');
}

/**
 * The failed builds of one custom resource: every build id its stack-and-resource tags show that
 * has no available AMI, but those in `exclude`. A failed Update's build id never reaches
 * CloudFormation again, so the next event of the resource removes what that build's own cleanup
 * could not.
 */
export async function findFailedBuilds(ec2: EC2Client, stackId: string, logicalId: string, withInstances: boolean, exclude: ReadonlySet<string>): Promise<string[]> {
  const filters = resourceFilters(stackId, logicalId);
  const finished = new Set<string>();
  const all = new Set<string>();
  for (const image of await findImages(ec2, filters)) {
    const buildId = buildIdOfTags(image.Tags);
    if (buildId) {
      all.add(buildId);
      if (image.State === 'available') {
        finished.add(buildId);
      }
    }
  }
  for (const snapshot of await findSnapshots(ec2, filters)) {
    const buildId = buildIdOfTags(snapshot.Tags);
    if (buildId) {
      all.add(buildId);
    }
  }
  if (withInstances) {
    for (const instance of await findLiveInstances(ec2, filters)) {
      const buildId = buildIdOfTags(instance.Tags);
      if (buildId) {
        all.add(buildId);
      }
    }
  }
  return [...all].filter((buildId) => !finished.has(buildId) && !exclude.has(buildId));
}

/** Cleanup of a failed build, for Create, Update and Delete alike: everything goes, whatever the removal policy. */
export function failedBuild(buildId: string, props: UnikernelAmiProperties, known?: KnownIds): BuildToRemove {
  return { buildId, props: { ...props, RemovalPolicy: AmiRemovalKind.DESTROY }, retain: false, finished: false, known };
}

/** Removes the failed builds of a resource (see findFailedBuilds), one pass each; what is left waits for the next event. */
export async function sweepFailedBuilds(aws: AwsClients, stackId: string, logicalId: string, props: readonly UnikernelAmiProperties[], exclude: ReadonlySet<string>, log: StepLog): Promise<void> {
  const withInstances = props.some(isHelperBuild);
  const helperProps = props.find(isHelperBuild) ?? props[0];
  for (const buildId of await findFailedBuilds(aws.ec2, stackId, logicalId, withInstances, exclude)) {
    const left = await removeBuildPass(aws, failedBuild(buildId, helperProps), log);
    log.step('sweep-failed-build', { failedBuildId: buildId, left: describeLeftovers(left) });
  }
}

