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
 * retain, so its snapshot (a failed build's leftover) is deleted whatever the policy.
 * @returns whether nothing of the build is left (but what `retain` keeps)
 */
export async function removeBuild(aws: AwsClients, buildId: string, props: UnikernelAmiProperties, log: StepLog): Promise<boolean> {
  // The ebs-direct strategy's role has no instance, volume or SSM permissions, and it has nothing of the kind to remove.
  const transientLeft = props.Strategy === BuildStrategyKind.EBS_DIRECT
    ? 0
    : await removeHelperResources(aws.ec2, aws.s3, props.StagingBucket, buildId, log);
  const images = await findBuildImages(aws.ec2, buildId);
  const retain = props.RemovalPolicy !== AmiRemovalKind.DESTROY && images.length > 0;
  const snapshotsLeft = retain ? 0 : await removeImagesAndSnapshots(aws.ec2, images, await findBuildSnapshots(aws.ec2, buildId), log);
  log.step(retain ? 'remove-build-retaining-image' : 'remove-build', { transientLeft, snapshotsLeft });
  return transientLeft === 0 && snapshotsLeft === 0;
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
