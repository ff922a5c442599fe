/**
 * `builds STACK [--remove-failed]`: every build of a stack and what each left (AMIs, snapshots,
 * instances, volumes, staged objects), found by the stack-id tag the handler puts on everything it
 * creates (types.ts STACK_ID_TAG) and by the staging bucket's `builds/<build id>/` prefix, with
 * the build CloudFormation holds (a MirageUnikernelAmi resource's physical id) marked.
 *
 * `--remove-failed` removes builds that provably failed, by the handler's own rules: the sweep a
 * later event of a resource makes (cleanup.ts sweepFailedBuilds: a build with no available AMI,
 * confirmed by id, every AMI decided on a read by its id, one recorded complete never touched). The
 * handler sweeps only while CloudFormation runs no other operation on the resource; the CLI cannot
 * know what runs, so it also refuses while the stack is in progress and leaves alone a build younger
 * than CloudFormation's hour that carries no failed record (its operation may still be running),
 * besides the build CloudFormation holds and a retained one.
 */
import { CloudFormationClient, StackResource } from '@aws-sdk/client-cloudformation';
import { DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, Instance, Volume } from '@aws-sdk/client-ec2';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { isBuildId } from '../../unikernel-ami/handler/build-id';
import { BuildRecord, recordOf } from '../../unikernel-ami/handler/build-record';
import { SWEEP_PROOF_AGE_MS, sweepFailedBuilds } from '../../unikernel-ami/handler/cleanup';
import { clock } from '../../unikernel-ami/handler/clock';
import { buildIdOfTags, describeAll, findImages, findSnapshots, PAGE_SIZE, timeOf } from '../../unikernel-ami/handler/image';
import { StepLog } from '../../unikernel-ami/handler/log';
import { BuildStrategyKind, RESOURCE_TAG, RETAINED_TAG, STACK_ID_TAG, STAGING_PREFIX, UnikernelAmiProperties } from '../../unikernel-ami/types';
import { formatDuration, requireRegion, withCredentials } from '../aws';
import { CliIo } from '../io';
import { onePositional, parseOptions } from '../options';
import { describeStack, inProgress, stackResources, stagingBucketOf, StackView, unikernelResources } from '../stack';

/** Every call `builds` makes to list: all read-only. */
export const BUILDS_PERMISSIONS = [
  'cloudformation:DescribeStacks',
  'cloudformation:DescribeStackResources',
  'ec2:DescribeImages',
  'ec2:DescribeSnapshots',
  'ec2:DescribeInstances',
  'ec2:DescribeVolumes',
  's3:ListBucket',
] as const;

/** What `--remove-failed` calls besides: the handler's sweep (cleanup.ts) on builds of the stack only. */
export const REMOVE_FAILED_PERMISSIONS = [
  'ec2:DeregisterImage',
  'ec2:DeleteSnapshot',
  'ec2:TerminateInstances',
  'ec2:DeleteVolume',
  's3:GetObject',
  's3:DeleteObject',
] as const;

/** The build id the sweep's log lines carry when they name no build of their own. */
const CLI_LOG_ID = 'cli';

/** One thing a build left. */
interface Left {
  readonly kind: 'image' | 'snapshot' | 'instance' | 'volume' | 'staged object';
  readonly id: string;
  readonly state: string;
  readonly createdAt?: number;
  readonly record?: BuildRecord;
  readonly retained?: boolean;
}

interface BuildView {
  readonly buildId: string;
  logicalId?: string;
  readonly left: Left[];
}

export async function buildsCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional, options, removeFailed } = parseBuildsOptions(args);
  const stackName = onePositional(positional, 'STACK');
  const cfn = new CloudFormationClient({ region: options.region });
  const ec2 = new EC2Client({ region: options.region });
  // A staging bucket of another region answers with a redirect: followed, as the handler does.
  const s3 = new S3Client({ region: options.region, followRegionRedirects: true });
  await requireRegion(cfn, 'builds', 'the stack\'s region');
  const allowed = removeFailed ? [...BUILDS_PERMISSIONS, ...REMOVE_FAILED_PERMISSIONS] : BUILDS_PERMISSIONS;
  return withCredentials('builds', allowed.join(', '), async () => {
    const stack = await describeStack(cfn, stackName);
    const resources = await stackResources(cfn, stack.stackId);
    const bucket = stagingBucketOf(resources);
    const builds = await listBuilds(ec2, s3, stack.stackId, bucket);
    const held = heldBuilds(resources);
    printBuilds(io, stack, builds, held, bucket);
    if (!removeFailed) {
      return 0;
    }
    return removeFailedBuilds(io, { ec2, s3 }, stack, builds, held, bucket);
  });
}

/** `--remove-failed` takes no value; the shared parser knows only options with one. */
function parseBuildsOptions(args: readonly string[]) {
  const rest = args.filter((arg) => arg !== '--remove-failed');
  return { ...parseOptions(rest, ['region']), removeFailed: rest.length !== args.length };
}

/** The builds CloudFormation holds: each MirageUnikernelAmi resource's physical id, by build id. */
function heldBuilds(resources: readonly StackResource[]): Map<string, string> {
  return new Map(unikernelResources(resources).filter((r) => isBuildId(r.PhysicalResourceId)).map((r) => [r.PhysicalResourceId!, r.LogicalResourceId ?? '']));
}

/** Everything carrying the stack's id tag, and the staged objects, by build. */
async function listBuilds(ec2: EC2Client, s3: S3Client, stackId: string, bucket: string | undefined): Promise<BuildView[]> {
  const filters = [{ Name: `tag:${STACK_ID_TAG}`, Values: [stackId] }];
  const builds = new Map<string, BuildView>();
  const add = (tags: { Key?: string; Value?: string }[] | undefined, left: Left) => {
    const buildId = buildIdOfTags(tags);
    if (!buildId) {
      return;
    }
    const build = builds.get(buildId) ?? builds.set(buildId, { buildId, left: [] }).get(buildId)!;
    build.logicalId ??= tags?.find((t) => t.Key === RESOURCE_TAG)?.Value;
    build.left.push(left);
  };
  const retainedTag = (tags: { Key?: string }[] | undefined) => (tags ?? []).some((t) => t.Key === RETAINED_TAG);
  for (const image of await findImages(ec2, filters)) {
    add(image.Tags, { kind: 'image', id: image.ImageId!, state: image.State ?? '?', createdAt: timeOf(image.CreationDate), record: recordOf(image.Tags), retained: retainedTag(image.Tags) });
  }
  for (const snapshot of await findSnapshots(ec2, filters)) {
    add(snapshot.Tags, { kind: 'snapshot', id: snapshot.SnapshotId!, state: `${snapshot.State ?? '?'}${snapshot.State === 'pending' ? ` ${snapshot.Progress ?? ''}`.trimEnd() : ''}`, createdAt: timeOf(snapshot.StartTime), record: recordOf(snapshot.Tags), retained: retainedTag(snapshot.Tags) });
  }
  const instances = await describeAll<Instance>('ec2:DescribeInstances', async (NextToken) => {
    const response = await ec2.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: PAGE_SIZE, NextToken }));
    return { items: (response.Reservations ?? []).flatMap((r) => r.Instances ?? []), next: response.NextToken };
  });
  for (const instance of instances) {
    add(instance.Tags, { kind: 'instance', id: instance.InstanceId!, state: instance.State?.Name ?? '?', createdAt: timeOf(instance.LaunchTime) });
  }
  const volumes = await describeAll<Volume>('ec2:DescribeVolumes', async (NextToken) => {
    const response = await ec2.send(new DescribeVolumesCommand({ Filters: filters, MaxResults: PAGE_SIZE, NextToken }));
    return { items: response.Volumes, next: response.NextToken };
  });
  for (const volume of volumes) {
    add(volume.Tags, { kind: 'volume', id: volume.VolumeId!, state: volume.State ?? '?', createdAt: timeOf(volume.CreateTime) });
  }
  if (bucket) {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: STAGING_PREFIX, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        const buildId = object.Key!.slice(STAGING_PREFIX.length).split('/')[0];
        if (isBuildId(buildId)) {
          const build = builds.get(buildId) ?? builds.set(buildId, { buildId, left: [] }).get(buildId)!;
          build.left.push({ kind: 'staged object', id: object.Key!, state: `${object.Size ?? 0} bytes`, createdAt: timeOf(object.LastModified) });
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
  const firstSeen = (b: BuildView) => Math.min(...b.left.map((l) => l.createdAt ?? Infinity));
  return [...builds.values()].sort((a, b) => firstSeen(a) - firstSeen(b));
}

function recordOfBuild(build: BuildView): BuildRecord | undefined {
  return build.left.map((l) => l.record).find((r) => r);
}

function isRetained(build: BuildView): boolean {
  return build.left.some((l) => l.retained);
}

/** What a build is, in words: held, retained, its record, or what is still running. */
function statusOf(build: BuildView, held: ReadonlyMap<string, string>): string {
  const parts: string[] = [];
  if (held.has(build.buildId)) {
    parts.push(`held by CloudFormation (${held.get(build.buildId)})`);
  }
  if (isRetained(build)) {
    parts.push('retained (no longer the stack\'s)');
  }
  const record = recordOfBuild(build);
  if (record) {
    parts.push(`recorded ${record.outcome}`);
  } else if (build.left.some((l) => l.kind === 'instance' && !['terminated', 'shutting-down'].includes(l.state))) {
    parts.push('no record, its helper is still there (running, or interrupted)');
  } else {
    parts.push('no build record');
  }
  return parts.join(', ');
}

function printBuilds(io: CliIo, stack: StackView, builds: readonly BuildView[], held: ReadonlyMap<string, string>, bucket: string | undefined): void {
  io.stdout(`Builds of stack ${stack.stackName} (${stack.status})${bucket ? `, staging bucket ${bucket}` : ''}:\n`);
  if (builds.length === 0) {
    io.stdout('  none: nothing in this region carries the stack\'s id tag\n');
  }
  for (const build of builds) {
    io.stdout(`${build.buildId}  ${build.logicalId ?? '?'}  ${statusOf(build, held)}\n`);
    for (const left of build.left) {
      io.stdout(`  ${left.kind.padEnd(13)} ${left.id}  ${left.state}${left.retained ? ', retained' : ''}\n`);
    }
  }
  const missing = [...held.keys()].filter((id) => !builds.some((b) => b.buildId === id));
  for (const buildId of missing) {
    io.stdout(`${buildId}  ${held.get(buildId)}  held by CloudFormation, but nothing of it is listed (deleted outside CloudFormation, or EC2 lists it late)\n`);
  }
}

async function removeFailedBuilds(io: CliIo, aws: { ec2: EC2Client; s3: S3Client }, stack: StackView, builds: readonly BuildView[], held: ReadonlyMap<string, string>,
  bucket: string | undefined): Promise<number> {
  if (inProgress(stack.status)) {
    io.stderr(`mirage-unikernel-ami: stack ${stack.stackName} is ${stack.status}: a build of the operation under way would look failed. Run --remove-failed once the stack is settled.\n`);
    return 1;
  }
  const now = clock().now();
  const exclude = new Set<string>(held.keys());
  for (const build of builds) {
    const record = recordOfBuild(build);
    const youngest = Math.max(...build.left.map((l) => l.createdAt ?? 0));
    const why = held.has(build.buildId) ? 'CloudFormation holds it'
      : isRetained(build) ? 'it is retained'
        : record?.outcome !== 'failed' && now - youngest < SWEEP_PROOF_AGE_MS
          ? `it is ${formatDuration(now - youngest)} old and has no failed record: its operation may still be running (CloudFormation waits up to an hour)`
          : undefined;
    if (why) {
      exclude.add(build.buildId);
      io.stdout(`keep ${build.buildId}: ${why}\n`);
    }
  }
  // What the sweep decides and does, one line per step of the handler's own log.
  const log = new StepLog(CLI_LOG_ID, () => clock().now(), (line) => {
    const { step, elapsedMs: _elapsed, ...fields } = JSON.parse(line) as Record<string, unknown>;
    const shown = Object.entries(fields).filter(([key, value]) => !(key === 'buildId' && value === CLI_LOG_ID));
    io.stdout(`  ${step} ${shown.map(([key, value]) => `${key}=${value}`).join(' ')}\n`);
  });
  // The sweep reads only the strategy and the staging bucket of these properties (cleanup.ts): as
  // a helper build, so that instances, volumes and staged objects are looked for too.
  const props = { Strategy: bucket ? BuildStrategyKind.HELPER_INSTANCE : BuildStrategyKind.EBS_DIRECT, StagingBucket: bucket } as UnikernelAmiProperties;
  const logicalIds = new Set(builds.filter((b) => !exclude.has(b.buildId) && b.logicalId).map((b) => b.logicalId!));
  for (const logicalId of logicalIds) {
    await sweepFailedBuilds(aws, stack.stackId, logicalId, [props], exclude, log);
  }
  for (const build of builds.filter((b) => !exclude.has(b.buildId) && b.left.some((l) => l.kind === 'image' && l.state === 'available'))) {
    io.stdout(`keep ${build.buildId}: it has an available AMI (the sweep removes only builds without one)\n`);
  }
  io.stdout(logicalIds.size === 0 ? 'nothing to remove\n' : 'done; run builds again to see what is left (EC2 lists removals late)\n');
  return 0;
}
