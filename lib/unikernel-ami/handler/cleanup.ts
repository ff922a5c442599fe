/**
 * Removing a build: on Delete, when a build fails part-way, and for the failed builds a later event
 * of the same resource finds ("hands the rest to the next event").
 *
 * What this invocation created is removed by the id its create call returned (tag filters lag); what
 * earlier invocations made is found by the build's tags and by its progress object. A removal pass
 * reports what is still there; cleanup repeats passes, with short waits, until nothing is left or
 * the invocation's time is up. AccessDenied never counts as "nothing left".
 *
 * An AMI or snapshot that a build reported to CloudFormation is destroyed only by the Delete of that
 * build's physical id. Tag-filtered reads lag and may answer an old state or leave a resource out,
 * so nothing is decided on them alone: every AMI is read again by its id before it is deregistered,
 * and a cleanup that is not the build's own Delete keeps:
 * - an AMI whose build is recorded complete (build-record.ts): every build CloudFormation was told
 *   about is, since the record is written before isComplete first answers complete;
 * - in a sweep of another build, any AMI whose build did not provably fail: one that is available
 *   (builds of earlier versions of the handler have no record), or pending and younger than
 *   CloudFormation's hour, unless it carries a failed record. A snapshot that an AMI uses is never
 *   deleted (EC2 refuses it: InvalidSnapshot.InUse).
 */
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DeleteVolumeCommand,
  DisableImageDeregistrationProtectionCommand,
  EC2Client,
  Filter,
  Image,
  Instance,
} from '@aws-sdk/client-ec2';
import { AmiRemovalKind, BuildStrategyKind, DeregistrationProtectionKind, OPERATION_TIMING, RETAINED_TAG, UnikernelAmiProperties } from '../types';
import { isRecordedComplete, recordFailure, recordOf } from './build-record';
import type { AwsClients } from './clients';
import { clock, invocationTimeLeft } from './clock';
import { PROTECTION_VALUES } from './distribution';
import { terminateHelper } from './helper-instance';
import {
  buildIdOfTags,
  deleteSnapshot,
  deregisterImage,
  describeAll,
  describeImageById,
  describeSnapshotById,
  findBuildImages,
  findBuildSnapshots,
  findImages,
  findSnapshots,
  isYoung,
  otherImageUsing,
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

/** The clients a removal uses (the CLI's `builds --remove-failed` has no others). */
export type RemovalClients = Pick<AwsClients, 'ec2' | 's3'>;

/** Something of a build that is still there after a removal pass. */
export interface Leftover {
  readonly kind: 'instance' | 'volume' | 'snapshot' | 'image' | 'staged objects' | 'error';
  readonly id: string;
  /** When it was made, if EC2 said (a later pass needs it to tell EC2's lag from "gone"). */
  readonly createdAt?: number;
  /** For an error: whether another attempt may succeed (throttling, a server error) or not (AccessDenied). */
  readonly transient?: boolean;
  /** For an error that is not about permissions: what the user can do (else: fix the handler's permissions). */
  readonly advice?: string;
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
  /**
   * Who removes the build, which decides which of its AMIs may go (see the file comment):
   * - `delete`: the Delete of the build's own physical id: every AMI, but the one `retain` keeps;
   * - `failed`: the build's own failure cleanup: every AMI but one recorded complete (a repeated
   *   delivery of an event that had completed), each recorded failed before it is deregistered;
   * - `sweep`: a later event of the resource, for a build that is not the event's: only AMIs that,
   *   read by their id, provably belong to a failed build.
   */
  readonly remover: 'delete' | 'failed' | 'sweep';
}

/**
 * How old a pending AMI of another build must be before a sweep counts its build as failed without
 * a failed record: CloudFormation's hour, after which no invocation of that build's event runs.
 */
export const SWEEP_PROOF_AGE_MS = OPERATION_TIMING.serviceTimeoutSeconds * 1000;

/**
 * Why an AMI (read by its id) must stay, for a remover other than its build's own Delete; undefined
 * when it may be deregistered.
 */
export function reasonToKeep(remover: BuildToRemove['remover'], image: Image): string | undefined {
  if (remover === 'delete' || image.State === 'deregistered' || image.State === 'failed') {
    return undefined;
  }
  const record = recordOf(image.Tags);
  if (record?.outcome === 'complete') {
    return 'its build is recorded complete';
  }
  if (remover === 'failed' || record?.outcome === 'failed') {
    return undefined;
  }
  if (image.State === 'available') {
    return 'it is available and its build has no failed record';
  }
  const createdAt = timeOf(image.CreationDate);
  if (image.State === 'pending' && (createdAt === undefined || clock().now() - createdAt < SWEEP_PROOF_AGE_MS)) {
    return 'it is pending, younger than an hour, and its build has no failed record';
  }
  return undefined;
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
export async function removeBuildPass(aws: RemovalClients, build: BuildToRemove, log: StepLog, removed = new Set<string>(), found: PassFindings = {}): Promise<Leftover[]> {
  const left: Leftover[] = [];
  // The root snapshots of the AMIs this pass deregistered (or found deregistered): deleted by id,
  // since a tag-filtered read may leave them out for a while.
  // Each with when its AMI was registered: the snapshot is older, so a NotFound for it is EC2's lag
  // at most as long as it would be for the AMI (isYoung).
  const rootsOfRemoved = new Map<string, number | undefined>();
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

  // The snapshots behind AMIs that stay: never deleted (EC2 would refuse it anyway).
  const keptSnapshots = new Set<string>();
  await part('images', async () => {
    let retained: Image | undefined;
    for (const listed of await findBuildImages(aws.ec2, build.buildId)) {
      const createdAt = timeOf(listed.CreationDate);
      // The tag-filtered answer may be stale: what happens to the AMI is decided on a read by its id.
      const image = await describeImageById(aws.ec2, listed.ImageId!);
      if (!image) {
        if (isYoung(createdAt)) {
          left.push({ kind: 'image', id: listed.ImageId!, createdAt });
        }
        continue;
      }
      if (image.State === 'deregistered') {
        found.image = true;
        const root = rootSnapshotOf(image);
        if (root && build.remover === 'delete') {
          rootsOfRemoved.set(root, createdAt);
        }
        continue;
      }
      // A read, even by id, may show an old state for a while: an AMI recorded complete (the record
      // is written once it is available) or already marked retained is the available one.
      if (build.retain && !retained && (image.State === 'available' || isRecordedComplete(image.Tags) || hasRetainedTag(image))) {
        retained = image;
        found.image = true;
        continue;
      }
      const keep = reasonToKeep(build.remover, image);
      if (keep) {
        const root = rootSnapshotOf(image);
        if (root) {
          keptSnapshots.add(root);
        }
        log.step('keep-image', { imageId: image.ImageId, state: image.State, why: keep });
        continue;
      }
      const protectedLeft = await unprotect(aws.ec2, image, log);
      if (protectedLeft) {
        left.push(protectedLeft);
        continue;
      }
      if (build.remover === 'failed' && recordOf(image.Tags) === undefined) {
        // Should the deregistration not happen, a later sweep can prove from this that the build failed.
        await recordFailure(aws.ec2, image, build.known?.createdAt).catch((err) => log.step('record-failure-failed', { imageId: image.ImageId, error: (err as Error).message }));
      }
      if (await deregisterImage(aws.ec2, image.ImageId!, createdAt)) {
        log.step('deregister-image', { imageId: image.ImageId });
        found.image = true;
        const root = rootSnapshotOf(image);
        if (root && build.remover === 'delete') {
          rootsOfRemoved.set(root, createdAt);
        }
      } else {
        left.push({ kind: 'image', id: image.ImageId!, createdAt });
      }
    }
    if (retained) {
      const root = rootSnapshotOf(retained);
      if (root) {
        keptSnapshots.add(root);
      }
      // Once marked, the role may change their tags no more (build-infrastructure.ts denyOnRetained).
      if (!hasRetainedTag(retained)) {
        await markRetained(aws.ec2, [retained.ImageId!, ...(root ? [root] : [])], log);
      }
    }
  });
  // What this invocation knows by id needs no lookup (lookups lag, or may be denied). Never the
  // retained AMI's snapshot; should the AMI not be listed yet, EC2 refuses to delete the snapshot
  // of a registered AMI (InvalidSnapshot.InUse) anyway.
  // A remover other than the build's own Delete reads each snapshot by its id first, and keeps one
  // recorded complete (the root of an AMI CloudFormation was told about, which the filtered read of
  // the AMIs may have missed).
  const mayDelete = async (snapshotId: string): Promise<boolean> => {
    if (keptSnapshots.has(snapshotId) || removed.has(snapshotId)) {
      return false;
    }
    if (build.remover === 'delete') {
      return true;
    }
    let snapshot;
    try {
      snapshot = await describeSnapshotById(aws.ec2, snapshotId);
    } catch (err) {
      if (build.remover === 'sweep') {
        throw err;
      }
      // The build's own failure cleanup may go on without the read: EC2 refuses to delete the
      // snapshot of a registered AMI (InvalidSnapshot.InUse), and the AMIs were read by id above.
      log.step('describe-snapshot-failed', { snapshotId, error: (err as Error).message });
    }
    if (snapshot && isRecordedComplete(snapshot.Tags)) {
      keptSnapshots.add(snapshotId);
      log.step('keep-snapshot', { snapshotId, why: 'its build is recorded complete' });
      return false;
    }
    return true;
  };
  await part('snapshots by id', async () => {
    for (const snapshotId of new Set([...(known.snapshotIds ?? []), ...rootsOfRemoved.keys()])) {
      if (await mayDelete(snapshotId)) {
        await removeSnapshot(aws.ec2, build, snapshotId, rootsOfRemoved.has(snapshotId) ? rootsOfRemoved.get(snapshotId) : known.createdAt, removed, left, log, found);
      }
    }
  });
  await part('snapshots by tag', async () => {
    for (const snapshot of await findBuildSnapshots(aws.ec2, build.buildId)) {
      if (!(known.snapshotIds ?? []).includes(snapshot.SnapshotId!) && !rootsOfRemoved.has(snapshot.SnapshotId!) && await mayDelete(snapshot.SnapshotId!)) {
        await removeSnapshot(aws.ec2, build, snapshot.SnapshotId!, timeOf(snapshot.StartTime), removed, left, log, found);
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

/** What a removal pass saw of the build, besides what is left. */
export interface PassFindings {
  /**
   * The pass saw the build's AMI, read by its id: it deregistered it, found it deregistered, kept it
   * as the retained one, or deleted a snapshot of the build (which EC2 refuses while an AMI uses it).
   * A pass that did none of these may have met a stale read that left the AMI out.
   */
  image?: boolean;
}

function hasRetainedTag(image: Image): boolean {
  return (image.Tags ?? []).some((tag) => tag.Key === RETAINED_TAG);
}

/**
 * Deletes one snapshot, once per removal: `removed` remembers what earlier passes deleted, whose
 * NotFound would otherwise look like the lag of a new snapshot.
 */
async function removeSnapshot(ec2: EC2Client, build: BuildToRemove, snapshotId: string, createdAt: number | undefined, removed: Set<string>, left: Leftover[], log: StepLog, found: PassFindings = {}): Promise<void> {
  if (removed.has(snapshotId)) {
    return;
  }
  // A rename registered the snapshot again (or this build is the rename): while another AMI, read
  // by its id, uses it, it stays for that AMI's own Delete. Only a finished build's snapshot can be
  // renamed, and only its Delete removes one (other removers keep a snapshot recorded complete). A
  // read that fails leaves the decision to EC2, which refuses to delete a snapshot a registered AMI
  // uses (InvalidSnapshot.InUse).
  const user = build.remover === 'delete'
    ? await otherImageUsing(ec2, snapshotId, build.buildId).catch((err) => {
      log.step('describe-snapshot-users-failed', { snapshotId, error: (err as Error).message });
      return undefined;
    })
    : undefined;
  if (user) {
    removed.add(snapshotId);
    found.image = true;
    log.step('keep-snapshot', { snapshotId, why: `AMI ${user} of another build uses it` });
    return;
  }
  if (await deleteSnapshot(ec2, snapshotId, createdAt)) {
    // EC2 refuses to delete the snapshot of a registered AMI (InvalidSnapshot.InUse): the AMI it backed is gone.
    found.image = true;
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
 * Deregistration protection, before an AMI is deregistered: protection without cooldown is turned
 * off, and the AMI can go. Protection with cooldown keeps the AMI for 24 hours after it is turned
 * off (EC2 API reference, DisableImageDeregistrationProtection), longer than any invocation: it is
 * turned off (once), and the AMI is reported as left, not to be waited for, with when it can go.
 * The construct allows the cooldown only with RETAIN, whose Delete never deregisters; this is what
 * a failed build's cleanup meets, or a Delete of a resource deployed without the construct.
 * @returns what is left, or undefined when the AMI may be deregistered now
 */
async function unprotect(ec2: EC2Client, image: Image, log: StepLog): Promise<Leftover | undefined> {
  const protection = image.DeregistrationProtection ?? PROTECTION_VALUES[DeregistrationProtectionKind.OFF];
  if (protection === PROTECTION_VALUES[DeregistrationProtectionKind.OFF]) {
    return undefined;
  }
  if (protection.startsWith('enabled')) {
    await withRetry('ec2:DisableImageDeregistrationProtection', () => ec2.send(new DisableImageDeregistrationProtectionCommand({ ImageId: image.ImageId })));
    log.step('disable-deregistration-protection', { imageId: image.ImageId, was: protection });
    if (protection === PROTECTION_VALUES[DeregistrationProtectionKind.ON]) {
      return undefined;
    }
  }
  return {
    kind: 'error',
    id: `AMI ${image.ImageId} has deregistration protection with cooldown: its protection is off now, but EC2 keeps it for 24 hours after that (${protection})`,
    transient: false,
    advice: 'Delete again after the cooldown (or keep the AMI: removalPolicy RETAIN, the only removal policy the construct allows with the cooldown).',
  };
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
export async function removeBuild(aws: RemovalClients, build: BuildToRemove, log: StepLog, budgetMs: number): Promise<Leftover[]> {
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

/** A build a sweep may remove: its id, and the AMIs and snapshots the tag filter listed for it. */
export interface FailedBuildCandidate {
  readonly buildId: string;
  readonly imageIds: readonly string[];
  readonly snapshotIds: readonly string[];
}

/**
 * The builds of one custom resource that a tag-filtered read shows as failed: every build id its
 * stack-and-resource tags show that has no available AMI, but those in `exclude`. A failed Update's
 * build id never reaches CloudFormation again, so the next event of the resource removes what that
 * build's own cleanup could not. The answer is only a list of candidates: it may be stale, and
 * sweepFailedBuilds confirms each by id.
 */
export async function findFailedBuilds(ec2: EC2Client, stackId: string, logicalId: string, withInstances: boolean, exclude: ReadonlySet<string>): Promise<FailedBuildCandidate[]> {
  const filters = resourceFilters(stackId, logicalId);
  const finished = new Set<string>();
  const all = new Map<string, { imageIds: string[]; snapshotIds: string[] }>();
  const add = (buildId: string) => all.get(buildId) ?? all.set(buildId, { imageIds: [], snapshotIds: [] }).get(buildId)!;
  for (const image of await findImages(ec2, filters)) {
    const buildId = buildIdOfTags(image.Tags);
    if (buildId) {
      add(buildId).imageIds.push(image.ImageId!);
      if (image.State === 'available') {
        finished.add(buildId);
      }
    }
  }
  for (const snapshot of await findSnapshots(ec2, filters)) {
    const buildId = buildIdOfTags(snapshot.Tags);
    if (buildId) {
      add(buildId).snapshotIds.push(snapshot.SnapshotId!);
    }
  }
  if (withInstances) {
    for (const instance of await findLiveInstances(ec2, filters)) {
      const buildId = buildIdOfTags(instance.Tags);
      if (buildId) {
        add(buildId);
      }
    }
  }
  return [...all].filter(([buildId]) => !finished.has(buildId) && !exclude.has(buildId)).map(([buildId, ids]) => ({ buildId, ...ids }));
}

/**
 * Why a sweep must leave a candidate build alone: one of its listed AMIs, read by its id, is one
 * that reasonToKeep keeps (recorded complete, available, or pending and young without a failed
 * record), or one of its listed snapshots, read by its id, is recorded complete (its AMI was left
 * out of the filtered read). Undefined when none is.
 */
async function reasonToSpare(ec2: EC2Client, candidate: FailedBuildCandidate): Promise<string | undefined> {
  for (const imageId of candidate.imageIds) {
    const image = await describeImageById(ec2, imageId);
    const keep = image ? reasonToKeep('sweep', image) : undefined;
    if (keep) {
      return `AMI ${imageId} stays: ${keep}`;
    }
  }
  for (const snapshotId of candidate.snapshotIds) {
    const snapshot = await describeSnapshotById(ec2, snapshotId);
    if (snapshot && isRecordedComplete(snapshot.Tags)) {
      return `snapshot ${snapshotId} stays: its build is recorded complete`;
    }
  }
  return undefined;
}

/**
 * Cleanup of a failed build, by its own failure cleanup or by a sweep, for Create, Update and
 * Delete alike: everything goes, whatever the removal policy, but what reasonToKeep keeps.
 */
export function failedBuild(buildId: string, props: UnikernelAmiProperties, known?: KnownIds, remover: 'failed' | 'sweep' = 'failed'): BuildToRemove {
  return { buildId, props: { ...props, RemovalPolicy: AmiRemovalKind.DESTROY }, retain: false, finished: false, known, remover };
}

/**
 * Removes the failed builds of a resource (see findFailedBuilds), one pass each; what is left waits
 * for the next event. `exclude` must hold the build CloudFormation holds (the event's physical id)
 * and the build the event itself makes (buildIdOf(event): a repeated delivery of an Update must not
 * sweep the build its first delivery started). Each candidate is confirmed by id first
 * (reasonToSpare), and its removal again decides every AMI on a read by id (reasonToKeep).
 */
export async function sweepFailedBuilds(aws: RemovalClients, stackId: string, logicalId: string, props: readonly UnikernelAmiProperties[], exclude: ReadonlySet<string>, log: StepLog): Promise<void> {
  const withInstances = props.some(isHelperBuild);
  const helperProps = props.find(isHelperBuild) ?? props[0];
  for (const candidate of await findFailedBuilds(aws.ec2, stackId, logicalId, withInstances, exclude)) {
    const buildId = candidate.buildId;
    const spare = await reasonToSpare(aws.ec2, candidate);
    if (spare) {
      log.step('sweep-spare-build', { buildId, why: spare });
      continue;
    }
    const left = await removeBuildPass(aws, failedBuild(buildId, helperProps, undefined, 'sweep'), log);
    log.step('sweep-failed-build', { failedBuildId: buildId, left: describeLeftovers(left) });
  }
}

