/**
 * The steps both strategies share once a snapshot exists: wait for it, register the paravirtual AMI,
 * update tags, and find and remove the AMIs and snapshots of a build.
 *
 * EC2 is eventually consistent ("Eventual consistency in the Amazon EC2 API"): a resource a create
 * call returned may be unknown for a while to calls naming its id (InvalidXxx.NotFound) and missing
 * from tag-filtered Describe results. So a NotFound for an id this build created is "not yet"
 * while the resource is young (NOT_FOUND_GRACE_MS), and "gone" only after that.
 */
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  Filter,
  Image,
  RegisterImageCommand,
  Snapshot,
} from '@aws-sdk/client-ec2';
import { PV_ROOT_DEVICE_NAME } from '../../pv-grub';
import { BUILD_ID_TAG, BUILD_RECORD_TAG, IMAGE_USER_TAG_PREFIX, PROPERTIES_TAG, RETAINED_TAG, UnikernelAmiAttributes } from '../types';
import { clock, invocationTimeLeft } from './clock';
import { BuildFailure } from './failure';
import { StepLog } from './log';
import { BuildSpec, buildFilter, isReservedTagKey, Tag } from './properties';
import { afterCreateRetry, isRetryableError, RetryOptions, withRetry } from './retry';

/**
 * Volume type of the AMI's root volume. PV AMIs run only on previous-generation families (C1, C3,
 * HS1, M1, M2, M3, T1); gp2 is the general-purpose type those families have always supported.
 */
const ROOT_VOLUME_TYPE = 'gp2';

/**
 * How long a resource this build created may stay unknown to EC2 before the handler concludes it
 * is gone. EC2 documents no bound ("a couple of seconds ... up to a few minutes"); five minutes is
 * far beyond what is observed.
 */
export const NOT_FOUND_GRACE_MS = 5 * 60_000;

/** Items per Describe page (the handler pages every tag-filtered Describe, as "Pagination in the Amazon EC2 API" recommends). */
export const PAGE_SIZE = 100;

/** EC2 error codes such as InvalidSnapshot.NotFound or InvalidAMIID.NotFound mean "not there (yet)". */
export function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name ?? '';
  return name.endsWith('NotFound') || name === 'NoSuchKey' || name === 'InvalidAMIID.Unavailable';
}

/**
 * The AMI name: unique per account and region (a rebuild registers its AMI before the old one
 * goes, and a rename registers the same disk again), and readable.
 */
export function imageNameOf(spec: Pick<BuildSpec, 'imageNamePrefix'>, buildId: string): string {
  return `${spec.imageNamePrefix}-${buildId}`;
}

/** The AMI's description: ImageDescription, or one that names the unikernel and the build. */
export function imageDescriptionOf(spec: Pick<BuildSpec, 'name' | 'imageDescription'>, buildId: string): string {
  return spec.imageDescription ?? `${spec.name} unikernel booted by PV-GRUB (mirage-unikernel-ami build ${buildId})`;
}

/** Every page of a tag-filtered Describe call. */
export async function describeAll<T>(label: string, page: (nextToken: string | undefined) => Promise<{ items?: T[]; next?: string }>): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const current = token;
    const response = await withRetry(label, () => page(current));
    items.push(...(response.items ?? []));
    token = response.next;
  } while (token);
  return items;
}

export function findSnapshots(ec2: EC2Client, filters: Filter[]): Promise<Snapshot[]> {
  return describeAll('ec2:DescribeSnapshots', async (NextToken) => {
    const response = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters, MaxResults: PAGE_SIZE, NextToken }));
    return { items: response.Snapshots, next: response.NextToken };
  });
}

/** AMIs of the account that match the filters; recently deregistered ones (which DescribeImages still lists for a while) are left out. */
export async function findImages(ec2: EC2Client, filters: Filter[]): Promise<Image[]> {
  const images = await describeAll('ec2:DescribeImages', async (NextToken) => {
    const response = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters, MaxResults: PAGE_SIZE, NextToken }));
    return { items: response.Images, next: response.NextToken };
  });
  return images.filter((image) => image.State !== 'deregistered');
}

export function findBuildSnapshots(ec2: EC2Client, buildId: string): Promise<Snapshot[]> {
  return findSnapshots(ec2, [buildFilter(buildId)]);
}

export function findBuildImages(ec2: EC2Client, buildId: string): Promise<Image[]> {
  return findImages(ec2, [buildFilter(buildId)]);
}

/**
 * One resource read by its id (the Describe call asked for that id only); undefined when EC2 does
 * not know the id (or no longer lists it).
 */
async function describeById<T>(label: string, call: () => Promise<T[] | undefined>): Promise<T | undefined> {
  try {
    return (await withRetry(label, call))?.[0];
  } catch (err) {
    if (isNotFound(err)) {
      return undefined;
    }
    throw err;
  }
}

/**
 * An AMI read by its id, as a sweep or cleanup confirms it before deciding anything (a tag-filtered
 * read may answer an old state, or leave an AMI out, for a while); undefined when EC2 does not know
 * the id (or no longer lists it).
 */
export function describeImageById(ec2: EC2Client, imageId: string): Promise<Image | undefined> {
  return describeById('ec2:DescribeImages', async () => (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images);
}

/** A snapshot read by its id; undefined when EC2 does not know the id. */
export function describeSnapshotById(ec2: EC2Client, snapshotId: string): Promise<Snapshot | undefined> {
  return describeById('ec2:DescribeSnapshots', async () => (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots);
}

/** The build an AMI or snapshot belongs to, from its tags. */
export function buildIdOfTags(tags: { Key?: string; Value?: string }[] | undefined): string | undefined {
  return tags?.find((tag) => tag.Key === BUILD_ID_TAG)?.Value;
}

/** The snapshot behind an AMI's root device. */
export function rootSnapshotOf(image: Image): string | undefined {
  return image.BlockDeviceMappings?.find((m) => m.DeviceName === image.RootDeviceName)?.Ebs?.SnapshotId;
}

/**
 * A snapshot by id. Undefined while it is unknown to EC2 and younger than NOT_FOUND_GRACE_MS (it
 * was just created); a BuildFailure once it has been unknown for longer (deleted outside the build).
 * @param createdAt when the build created it, as far as the handler knows
 */
export function describeOwnSnapshot(ec2: EC2Client, snapshotId: string, buildId: string, createdAt: number): Promise<Snapshot | undefined> {
  return describeOwn(
    'ec2:DescribeSnapshots',
    async () => (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots?.[0],
    createdAt,
    (unknownForMs) => new BuildFailure(
      `Snapshot ${snapshotId} of build ${buildId} is not found: EC2 has not known it for ${Math.round(unknownForMs / 60_000)} minutes ` +
      '(was it deleted outside CloudFormation?). Redeploy to start a new build.',
    ),
  );
}

/**
 * A resource this build created, described by its id. Undefined while EC2 does not know it (a
 * NotFound, or an empty answer) and it is younger than NOT_FOUND_GRACE_MS; once it has been unknown
 * for longer, the error `gone` makes of how long.
 */
export async function describeOwn<T>(
  label: string,
  describe: () => Promise<T | undefined>,
  createdAt: number,
  gone: (unknownForMs: number) => Error,
): Promise<T | undefined> {
  try {
    const found = await withRetry(label, describe);
    if (found) {
      return found;
    }
  } catch (err) {
    if (!isNotFound(err)) {
      throw err;
    }
  }
  if (isYoung(createdAt)) {
    return undefined;
  }
  throw gone(clock().now() - createdAt);
}

/**
 * What a build still waits for on its snapshot: undefined once it is completed, a BuildFailure
 * if it failed.
 */
export function snapshotWait(snapshot: Snapshot): string | undefined {
  if (snapshot.State === 'error') {
    throw new BuildFailure(`Snapshot ${snapshot.SnapshotId} failed: ${(snapshot.StateMessage ?? 'no reason given').replace(/\.$/, '')}. Redeploy to start a new build.`);
  }
  return snapshot.State === 'completed' ? undefined : `snapshot ${snapshot.SnapshotId} to complete (${snapshot.Progress || 'pending'})`;
}

export interface ImageContext {
  readonly ec2: EC2Client;
  readonly buildId: string;
  readonly spec: BuildSpec;
  readonly tags: readonly Tag[];
  readonly log: StepLog;
}

/** Where the build's AMI is: not registered yet (or not visible yet), pending, or available. */
export type ImageProgress =
  | { readonly status: 'registering' }
  /** Another delivery of the same event completed the build (its snapshot carries the complete record); its AMI may be gone since. */
  | { readonly status: 'recorded'; readonly attributes: UnikernelAmiAttributes }
  | { readonly status: 'pending'; readonly imageId: string }
  | { readonly status: 'available'; readonly imageId: string };

/**
 * Registers the build's AMI from its completed snapshot, once: RegisterImage has no client token,
 * but AMI names are unique per account and region, so a repeat answers InvalidAMIName.Duplicate and
 * the AMI is then found by its name (or by the build's tag). A registration EC2 does not list yet is
 * waited for.
 */
/**
 * @param snapshotCreatedAt when the snapshot was started: RegisterImage needs our tags on it, which
 *   IAM may not see yet right after (an EBS-direct snapshot can complete within seconds)
 */
export async function ensureImage(ctx: ImageContext, snapshotId: string, snapshotCreatedAt?: number,
  recordedComplete?: (snapshotId: string) => Promise<UnikernelAmiAttributes | undefined>): Promise<ImageProgress> {
  const existing = (await findBuildImages(ctx.ec2, ctx.buildId))[0] ?? (await findImageByName(ctx));
  if (existing) {
    return progressOf(existing);
  }
  // No AMI is listed: it may be one that another delivery of the event registered and recorded
  // complete, deregistered since by the build's own Delete (a rollback). Never registered again.
  const recorded = await recordedComplete?.(snapshotId);
  if (recorded) {
    ctx.log.step('image-recorded-elsewhere', { ...recorded });
    return { status: 'recorded', attributes: recorded };
  }
  const name = imageNameOf(ctx.spec, ctx.buildId);
  try {
    const response = await withRetry('ec2:RegisterImage', () =>
      ctx.ec2.send(
        new RegisterImageCommand({
          Name: name,
          Description: imageDescriptionOf(ctx.spec, ctx.buildId),
          VirtualizationType: 'paravirtual',
          Architecture: ctx.spec.architecture,
          KernelId: ctx.spec.kernelId,
          RootDeviceName: PV_ROOT_DEVICE_NAME,
          BlockDeviceMappings: [
            {
              DeviceName: PV_ROOT_DEVICE_NAME,
              Ebs: { SnapshotId: snapshotId, DeleteOnTermination: true, VolumeType: ROOT_VOLUME_TYPE, VolumeSize: ctx.spec.volumeSizeGiB },
            },
          ],
          TagSpecifications: [{ ResourceType: 'image', Tags: [...ctx.tags] }],
        }),
      ),
    afterCreateRetry(snapshotCreatedAt, clock().now()));
    ctx.log.step('register-image', { imageId: response.ImageId, snapshotId });
    ctx.log.stage('image-registered', { imageId: response.ImageId, snapshotId });
    return { status: 'pending', imageId: response.ImageId! };
  } catch (err) {
    if ((err as Error).name === 'InvalidAMIName.Duplicate') {
      // An earlier round registered it, and EC2 does not list it yet: wait for it.
      ctx.log.step('wait-image-visible', { name });
      return { status: 'registering' };
    }
    if ((err as Error).name === 'InvalidSnapshot.NotFound') {
      // The snapshot was just seen completed: RegisterImage's part of EC2 does not know it yet.
      // Should it really be gone, the next round's describe says so.
      ctx.log.step('wait-snapshot-visible-to-register', { snapshotId });
      return { status: 'registering' };
    }
    throw err;
  }
}

async function findImageByName(ctx: ImageContext): Promise<Image | undefined> {
  return (await findImages(ctx.ec2, [{ Name: 'name', Values: [imageNameOf(ctx.spec, ctx.buildId)] }]))[0];
}

function progressOf(image: Image): ImageProgress {
  if (image.State === 'available') {
    return { status: 'available', imageId: image.ImageId! };
  }
  if (image.State === 'pending') {
    return { status: 'pending', imageId: image.ImageId! };
  }
  throw new BuildFailure(`AMI ${image.ImageId} is ${image.State}: ${image.StateReason?.Message ?? 'no reason given'}. Redeploy to start a new build.`);
}

/** How long a finished build's AMI may be missing from EC2's tag lookups before it counts as gone (a build that finished moments ago may not be listed yet). */
const BUILT_IMAGE_LOOKUPS_MS = [10_000, 20_000, 30_000, 60_000];

/** Attributes of a build that is done: its available AMI, the AMI's root snapshot and AKI. */
export async function describeBuiltImage(ec2: EC2Client, buildId: string): Promise<{ attributes: UnikernelAmiAttributes; image: Image }> {
  for (let lookup = 0; ; lookup++) {
    const image = (await findBuildImages(ec2, buildId)).find((i) => i.State === 'available');
    const snapshotId = image ? rootSnapshotOf(image) : undefined;
    if (image?.ImageId && snapshotId && image.KernelId) {
      return { attributes: { ImageId: image.ImageId, SnapshotId: snapshotId, KernelId: image.KernelId, ImageName: image.Name }, image };
    }
    if (lookup >= BUILT_IMAGE_LOOKUPS_MS.length || BUILT_IMAGE_LOOKUPS_MS[lookup] >= invocationTimeLeft()) {
      throw new BuildFailure(`The AMI of build ${buildId} is gone (deregistered outside CloudFormation?). Change the kernel or Name to build a new one.`);
    }
    await clock().sleep(BUILT_IMAGE_LOOKUPS_MS[lookup]);
  }
}

/**
 * Puts the new tag set on a built AMI and its snapshot: CreateTags for every tag (it overwrites
 * values), DeleteTags for the user tags the AMI has that the new set lacks. The caller has checked
 * that the AMI exists.
 * @param migratedAt when the handler added the stack-id tag to them (tag-migration.ts), which IAM may not see yet
 */
export async function retagImage(ec2: EC2Client, image: Image, snapshotId: string, tags: readonly Tag[], migratedAt?: number): Promise<string[]> {
  const keys = new Set(tags.map((tag) => tag.Key));
  const removedKeys = (image.Tags ?? []).map((tag) => tag.Key!).filter((key) => !isReservedTagKey(key) && !keys.has(key));
  const resources = [image.ImageId!, snapshotId];
  // The AMI was just listed: a NotFound for its id (or its snapshot's) is EC2's lag, worth waiting out.
  const tagsJustChanged = afterCreateRetry(migratedAt, clock().now()).isRetryable ?? (() => false);
  const lagTolerant: RetryOptions = {
    attempts: 100, baseDelayMs: 2000, maxDelayMs: 30_000, maxElapsedMs: 3 * 60_000,
    isRetryable: (err) => isRetryableError(err) || isNotFound(err) || tagsJustChanged(err),
  };
  await withRetry('ec2:CreateTags', () => ec2.send(new CreateTagsCommand({ Resources: resources, Tags: [...tags] })), lagTolerant);
  if (removedKeys.length > 0) {
    await withRetry('ec2:DeleteTags', () =>
      ec2.send(new DeleteTagsCommand({ Resources: resources, Tags: removedKeys.map((Key) => ({ Key })) })),
    lagTolerant);
  }
  return removedKeys;
}

/**
 * A finished build of the same resource made from the same properties (its AMI available and not
 * retained), as a rollback to old properties wants it back.
 */
export async function findBuildByProperties(ec2: EC2Client, resourceFilters: Filter[], hash: string): Promise<string | undefined> {
  const images = await findImages(ec2, [...resourceFilters, { Name: `tag:${PROPERTIES_TAG}`, Values: [hash] }]);
  const image = images.find((i) => i.State === 'available' && !(i.Tags ?? []).some((tag) => tag.Key === RETAINED_TAG));
  return image ? buildIdOfTags(image.Tags) : undefined;
}

/** Whether a resource created at `createdAt` may still be unknown to EC2 by lag. */
export function isYoung(createdAt: number | undefined): boolean {
  return createdAt !== undefined && clock().now() - createdAt < NOT_FOUND_GRACE_MS;
}

/**
 * Runs a call that removes a resource by id.
 * @returns whether the resource is gone: a NotFound counts as gone, except for a resource so young
 *   that EC2 may not know it yet ("If you get InvalidInstanceID.NotFound after TerminateInstances,
 *   it doesn't mean the instance has been or will be terminated")
 */
export async function removeById(label: string, call: () => Promise<unknown>, createdAt?: number): Promise<boolean> {
  try {
    await withRetry(label, call, afterCreateRetry(createdAt, clock().now()));
    return true;
  } catch (err) {
    if (isNotFound(err)) {
      return !isYoung(createdAt);
    }
    throw err;
  }
}

export function deregisterImage(ec2: EC2Client, imageId: string, createdAt?: number): Promise<boolean> {
  return removeById('ec2:DeregisterImage', () => ec2.send(new DeregisterImageCommand({ ImageId: imageId })), createdAt);
}

/**
 * Deletes a snapshot.
 * @returns whether it is gone; false while a just-deregistered AMI still holds it (InvalidSnapshot.InUse
 *   for a moment) or while EC2 may not know it yet
 */
export async function deleteSnapshot(ec2: EC2Client, snapshotId: string, createdAt?: number): Promise<boolean> {
  try {
    return await removeById('ec2:DeleteSnapshot', () => ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })), createdAt);
  } catch (err) {
    if ((err as Error).name === 'InvalidSnapshot.InUse') {
      return false;
    }
    throw err;
  }
}

/** The AMI a build registered on a snapshot it did not write (a rename), from the snapshot's tags. */
export function imageUserOf(tags: readonly { Key?: string; Value?: string }[] | undefined, buildId: string): string | undefined {
  const value = tags?.find((tag) => tag.Key === `${IMAGE_USER_TAG_PREFIX}${buildId}`)?.Value;
  return value && /^ami-[0-9a-f]+$/.test(value) ? value : undefined;
}

/** Marks a snapshot as used by a rename's AMI (see IMAGE_USER_TAG_PREFIX). */
export async function markImageUser(ec2: EC2Client, snapshotId: string, buildId: string, imageId: string): Promise<void> {
  await withRetry('ec2:CreateTags image-user', () => ec2.send(new CreateTagsCommand({ Resources: [snapshotId], Tags: [{ Key: `${IMAGE_USER_TAG_PREFIX}${buildId}`, Value: imageId }] })));
}

/**
 * Another AMI that still uses a snapshot the build `buildId` is about to delete: the AMI of the
 * build that wrote it (its record) or of a rename (IMAGE_USER_TAG_PREFIX), each read by its id and
 * not deregistered. EC2 would refuse the deletion anyway (InvalidSnapshot.InUse); this tells the
 * handler that the snapshot is to stay, rather than to be waited for.
 */
export async function otherImageUsing(ec2: EC2Client, snapshotId: string, buildId: string): Promise<string | undefined> {
  const snapshot = await describeSnapshotById(ec2, snapshotId);
  const tags = snapshot?.Tags ?? [];
  const candidates = new Set<string>();
  const writer = buildIdOfTags(tags);
  const recordedImage = /(?:^| )image=(ami-[0-9a-f]+)/.exec(tags.find((tag) => tag.Key === BUILD_RECORD_TAG)?.Value ?? '')?.[1];
  if (recordedImage && writer !== buildId) {
    candidates.add(recordedImage);
  }
  for (const tag of tags) {
    if (tag.Key?.startsWith(IMAGE_USER_TAG_PREFIX) && tag.Key !== `${IMAGE_USER_TAG_PREFIX}${buildId}` && /^ami-[0-9a-f]+$/.test(tag.Value ?? '')) {
      candidates.add(tag.Value!);
    }
  }
  for (const imageId of candidates) {
    const image = await describeImageById(ec2, imageId);
    if (image && image.State !== 'deregistered' && image.State !== 'failed' && rootSnapshotOf(image) === snapshotId) {
      return imageId;
    }
  }
  return undefined;
}

/** When EC2 says a resource was made (Describe answers carry it), in clock time. */
export function timeOf(date: Date | string | undefined): number | undefined {
  return date === undefined ? undefined : new Date(date).getTime();
}
