/**
 * The steps both strategies share once a snapshot exists: wait for it, register the paravirtual AMI,
 * update tags, and remove the AMI and snapshot of a build.
 */
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  Image,
  RegisterImageCommand,
  Snapshot,
} from '@aws-sdk/client-ec2';
import { PV_ROOT_DEVICE_NAME } from '../../pv-grub';
import { UnikernelAmiAttributes } from '../types';
import { StepLog } from './log';
import { BuildSpec, buildFilter, Tag } from './properties';
import { withRetry } from './retry';

/**
 * Volume type of the AMI's root volume. PV AMIs run only on previous-generation families (C1, C3,
 * HS1, M1, M2, M3, T1); gp2 is the general-purpose type those families have always supported.
 */
const ROOT_VOLUME_TYPE = 'gp2';

/** EC2 error codes such as InvalidSnapshot.NotFound or InvalidAMIID.NotFound mean "already gone". */
export function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name ?? '';
  return name.endsWith('NotFound') || name === 'NoSuchKey' || name === 'InvalidAMIID.Unavailable';
}

/** The AMI name: unique per account and region, and readable. */
export function imageNameOf(spec: BuildSpec, buildId: string): string {
  return `${spec.name}-${buildId}`;
}

export async function findBuildSnapshots(ec2: EC2Client, buildId: string): Promise<Snapshot[]> {
  const response = await withRetry('ec2:DescribeSnapshots', () =>
    ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [buildFilter(buildId)] })),
  );
  return response.Snapshots ?? [];
}

export async function findBuildImages(ec2: EC2Client, buildId: string): Promise<Image[]> {
  const response = await withRetry('ec2:DescribeImages', () =>
    ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [buildFilter(buildId)] })),
  );
  return response.Images ?? [];
}

/**
 * The build's snapshot by id, or undefined while EC2 does not show it yet: EC2 is eventually
 * consistent, so right after CreateSnapshot or StartSnapshot a describe by id can answer
 * InvalidSnapshot.NotFound for a while. Only ids this build created come here.
 */
async function describeSnapshot(ec2: EC2Client, snapshotId: string): Promise<Snapshot | undefined> {
  let response;
  try {
    response = await withRetry('ec2:DescribeSnapshots', () => ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })));
  } catch (err) {
    if (isNotFound(err)) {
      return undefined;
    }
    throw err;
  }
  const snapshot = response.Snapshots?.[0];
  if (!snapshot) {
    throw new Error(`Snapshot ${snapshotId} of the build has disappeared (was it deleted by hand?). Redeploy to start a new build.`);
  }
  return snapshot;
}

export interface ImageContext {
  readonly ec2: EC2Client;
  readonly buildId: string;
  readonly spec: BuildSpec;
  readonly tags: readonly Tag[];
  readonly log: StepLog;
}

/**
 * Once the snapshot is completed, registers the AMI (once: a registered image is found by the build's
 * tag, or by its unique name) and waits until it is available.
 * @returns the attributes when the AMI is available, undefined while something is still pending
 */
export async function registerImageWhenReady(ctx: ImageContext, snapshotId: string): Promise<UnikernelAmiAttributes | undefined> {
  const snapshot = await describeSnapshot(ctx.ec2, snapshotId);
  if (!snapshot) {
    ctx.log.step('wait-snapshot-visible', { snapshotId });
    return undefined;
  }
  if (snapshot.State === 'error') {
    throw new Error(`Snapshot ${snapshotId} failed: ${snapshot.StateMessage ?? 'no reason given'}. Redeploy to start a new build.`);
  }
  if (snapshot.State !== 'completed') {
    ctx.log.step('wait-snapshot', { snapshotId, state: snapshot.State, progress: snapshot.Progress });
    return undefined;
  }
  const image = (await findBuildImages(ctx.ec2, ctx.buildId))[0] ?? (await registerImage(ctx, snapshotId));
  if (image.State === 'failed' || image.State === 'error' || image.State === 'invalid') {
    throw new Error(`AMI ${image.ImageId} is ${image.State}: ${image.StateReason?.Message ?? 'no reason given'}.`);
  }
  if (image.State !== 'available') {
    ctx.log.step('wait-image', { imageId: image.ImageId, state: image.State });
    return undefined;
  }
  return { ImageId: image.ImageId!, SnapshotId: snapshotId, KernelId: ctx.spec.kernelId };
}

/**
 * RegisterImage with what PV-GRUB needs: paravirtual, the PV-GRUB AKI as KernelId, /dev/sda1 (the
 * root device of PV instances) and an explicit Architecture (EC2 would default it to i386). No
 * EnaSupport or SriovNetSupport: they are HVM-only and can make a PV instance unreachable.
 */
async function registerImage(ctx: ImageContext, snapshotId: string): Promise<Image> {
  const name = imageNameOf(ctx.spec, ctx.buildId);
  try {
    const response = await withRetry('ec2:RegisterImage', () =>
      ctx.ec2.send(
        new RegisterImageCommand({
          Name: name,
          Description: `${ctx.spec.name} unikernel booted by PV-GRUB (mirage-unikernel-ami build ${ctx.buildId})`,
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
    );
    ctx.log.step('register-image', { imageId: response.ImageId, snapshotId });
    return { ImageId: response.ImageId, State: 'pending' };
  } catch (err) {
    // A previous attempt registered it, but the tag filter does not see it yet (eventual consistency).
    if ((err as Error).name === 'InvalidAMIName.Duplicate') {
      const byName = await withRetry('ec2:DescribeImages', () =>
        ctx.ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] })),
      );
      if (byName.Images?.[0]) {
        return byName.Images[0];
      }
    }
    throw err;
  }
}

/** Attributes of a build that is done: its AMI, the AMI's root snapshot and AKI. */
export async function describeBuiltImage(ec2: EC2Client, buildId: string): Promise<UnikernelAmiAttributes> {
  const image = (await findBuildImages(ec2, buildId))[0];
  const snapshotId = image?.BlockDeviceMappings?.find((m) => m.DeviceName === image.RootDeviceName)?.Ebs?.SnapshotId;
  if (!image?.ImageId || !snapshotId || !image.KernelId) {
    throw new Error(`The AMI of build ${buildId} is gone (deregistered outside CloudFormation?). Change the kernel or Name to build a new one.`);
  }
  return { ImageId: image.ImageId, SnapshotId: snapshotId, KernelId: image.KernelId };
}

/**
 * Puts the new tag set on the build's AMI and snapshot: CreateTags for every tag (it overwrites
 * values), DeleteTags for user tags that were removed.
 */
export async function updateImageTags(ec2: EC2Client, resourceIds: string[], tags: readonly Tag[], removedKeys: readonly string[]): Promise<void> {
  if (resourceIds.length === 0) {
    return;
  }
  await withRetry('ec2:CreateTags', () => ec2.send(new CreateTagsCommand({ Resources: resourceIds, Tags: [...tags] })));
  if (removedKeys.length > 0) {
    await withRetry('ec2:DeleteTags', () =>
      ec2.send(new DeleteTagsCommand({ Resources: resourceIds, Tags: removedKeys.map((Key) => ({ Key })) })),
    );
  }
}

/** Runs an AWS call whose NotFound means the work is already done. */
export async function ignoringNotFound(label: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await withRetry(label, call);
  } catch (err) {
    if (!isNotFound(err)) {
      throw err;
    }
  }
}

/**
 * Deregisters the build's AMIs and deletes its snapshots.
 * @returns how many snapshots are still there (a snapshot stays InUse for a moment after its AMI is deregistered)
 */
export async function removeImagesAndSnapshots(ec2: EC2Client, images: Image[], snapshots: Snapshot[], log: StepLog): Promise<number> {
  for (const image of images) {
    await ignoringNotFound('ec2:DeregisterImage', () => ec2.send(new DeregisterImageCommand({ ImageId: image.ImageId })));
    log.step('deregister-image', { imageId: image.ImageId });
  }
  let remaining = 0;
  for (const snapshot of snapshots) {
    try {
      await ignoringNotFound('ec2:DeleteSnapshot', () => ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshot.SnapshotId })));
      log.step('delete-snapshot', { snapshotId: snapshot.SnapshotId });
    } catch (err) {
      if ((err as Error).name !== 'InvalidSnapshot.InUse') {
        throw err;
      }
      remaining++;
      log.step('wait-snapshot-release', { snapshotId: snapshot.SnapshotId });
    }
  }
  return remaining;
}
