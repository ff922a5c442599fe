/**
 * Builds of releases before the stack-id tag (types.ts STACK_ID_TAG) carry only the stack's name,
 * which the handler role no longer trusts: a stack created again under a deleted stack's name would
 * share it. The next Update or Delete of such a build's resource adds this stack's id to what the
 * build made, found by its build id (which CloudFormation holds as the physical id), so that the
 * role, which now requires the id, can update and remove it.
 *
 * The role allows exactly this (build-infrastructure.ts allowTagMigration): adding the stack-id tag
 * alone, to a resource with the managed tag and this stack's name, no stack id yet and no retained
 * mark. Retained AMIs of those releases stay out of every handler's reach.
 */
import { CreateTagsCommand, DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, Tag as Ec2Tag } from '@aws-sdk/client-ec2';
import { MANAGED_TAG, RETAINED_TAG, STACK_ID_TAG, STACK_TAG } from '../types';
import { describeAll, findBuildImages, findBuildSnapshots, PAGE_SIZE } from './image';
import { StepLog } from './log';
import { buildFilter, stackNameOf } from './properties';
import { withRetry } from './retry';

/** Whether a resource of this stack's build was tagged by a release before the stack-id tag. */
export function needsStackIdTag(tags: readonly Ec2Tag[] | undefined, stackId: string): boolean {
  const value = (key: string) => tags?.find((tag) => tag.Key === key)?.Value;
  return value(MANAGED_TAG) === 'true' && value(STACK_TAG) === stackNameOf(stackId) && value(STACK_ID_TAG) === undefined && value(RETAINED_TAG) === undefined;
}

/**
 * Adds this stack's id to the AMIs, snapshots and, for a helper build, live instances and volumes
 * of `buildId` that a release before the stack-id tag made.
 * @returns when it tagged something (clock time), for the lag-tolerant calls that follow; undefined when nothing needed it
 */
export async function migrateBuildTags(ec2: EC2Client, buildId: string, stackId: string, helperBuild: boolean, now: number, log: StepLog): Promise<number | undefined> {
  const filters = [buildFilter(buildId)];
  const instances = !helperBuild ? [] : await describeAll('ec2:DescribeInstances', async (NextToken) => {
    const response = await ec2.send(new DescribeInstancesCommand({
      Filters: [...filters, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }], MaxResults: PAGE_SIZE, NextToken,
    }));
    return { items: (response.Reservations ?? []).flatMap((r) => r.Instances ?? []), next: response.NextToken };
  });
  const volumes = !helperBuild ? [] : await describeAll('ec2:DescribeVolumes', async (NextToken) => {
    const response = await ec2.send(new DescribeVolumesCommand({ Filters: filters, MaxResults: PAGE_SIZE, NextToken }));
    return { items: response.Volumes, next: response.NextToken };
  });
  const resources = [
    ...(await findBuildImages(ec2, buildId)).map((r) => ({ id: r.ImageId, tags: r.Tags })),
    ...(await findBuildSnapshots(ec2, buildId)).map((r) => ({ id: r.SnapshotId, tags: r.Tags })),
    ...instances.map((r) => ({ id: r.InstanceId, tags: r.Tags })),
    ...volumes.map((r) => ({ id: r.VolumeId, tags: r.Tags })),
  ].filter((r) => r.id !== undefined && needsStackIdTag(r.tags, stackId)).map((r) => r.id!);
  if (resources.length === 0) {
    return undefined;
  }
  await withRetry('ec2:CreateTags', () => ec2.send(new CreateTagsCommand({ Resources: resources, Tags: [{ Key: STACK_ID_TAG, Value: stackId }] })));
  log.step('migrate-stack-id-tag', { resources: resources.join(',') });
  return now;
}
