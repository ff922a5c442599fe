/**
 * Removing a build: on Delete, and when a build fails part-way. Everything is found by the build's
 * tag, so it works after a failed Create too; whatever is already gone counts as removed.
 */
import { AmiRemovalKind, BuildStrategyKind, UnikernelAmiProperties } from '../types';
import { AwsClients } from './clients';
import { removeHelperResources } from './helper-instance';
import { findBuildImages, findBuildSnapshots, removeImagesAndSnapshots } from './image';
import { StepLog } from './log';

/**
 * One removal pass; isComplete repeats it until it returns true.
 *
 * `retain` keeps the AMI and its snapshot. A build that never registered an AMI has nothing to
 * retain, so its snapshot (a failed build's leftover) is deleted whatever the policy. The AMI and
 * snapshot go first, so that a failing helper cleanup cannot leak them.
 * @param removeTransient whether to look for the helper strategy's instance, volume and staged
 *   objects; a finished build deleted those itself, and its role may since have lost the permissions
 *   (a stack switched to ebsDirect) and its staging bucket may be gone
 * @returns whether nothing of the build is left (but what `retain` keeps)
 */
export async function removeBuild(aws: AwsClients, buildId: string, props: UnikernelAmiProperties, log: StepLog, removeTransient = true): Promise<boolean> {
  const images = await findBuildImages(aws.ec2, buildId);
  const retain = props.RemovalPolicy !== AmiRemovalKind.DESTROY && images.length > 0;
  const snapshotsLeft = retain ? 0 : await removeImagesAndSnapshots(aws.ec2, images, await findBuildSnapshots(aws.ec2, buildId), log);
  // The ebs-direct strategy's role has no instance, volume or SSM permissions, and it has nothing of the kind to remove.
  const transientLeft = props.Strategy === BuildStrategyKind.EBS_DIRECT || !removeTransient
    ? 0
    : await removeHelperResources(aws.ec2, aws.s3, props.StagingBucket, buildId, log);
  log.step(retain ? 'remove-build-retaining-image' : 'remove-build', { transientLeft, snapshotsLeft });
  return transientLeft === 0 && snapshotsLeft === 0;
}

/** A build with an available AMI has finished: it has already removed its helper, volume and staged objects. */
export async function isFinishedBuild(aws: AwsClients, buildId: string): Promise<boolean> {
  return (await findBuildImages(aws.ec2, buildId)).some((image) => image.State === 'available');
}

/** Removes what a failed build made, then lets the original error through; a cleanup error is only logged. */
export async function abandonBuild(aws: AwsClients, buildId: string, props: UnikernelAmiProperties, log: StepLog, cause: unknown): Promise<never> {
  log.step('build-failed', { error: (cause as Error)?.message });
  try {
    await removeBuild(aws, buildId, { ...props, RemovalPolicy: AmiRemovalKind.DESTROY }, log);
  } catch (err) {
    log.step('build-failed-cleanup-error', { error: (err as Error)?.message });
  }
  throw cause;
}
