/**
 * The helper-instance strategy. The handler stages the disk image in S3 and launches a transient
 * Amazon Linux instance whose launch also creates the data volume (a block device mapping with
 * DeleteOnTermination). Once the instance's SSM agent is online, the helper script (through SSM Run
 * Command) writes the image onto the volume, syncs and verifies it; the volume is then snapshotted
 * while still attached ("You can take a snapshot of an attached volume that is in use"; nothing
 * writes to it any more), and the helper is terminated, which deletes its volumes.
 *
 * No CreateVolume, AttachVolume, DetachVolume or DeleteVolume is left to go wrong, and nothing the
 * build makes outlives its helper but the snapshot. Each isComplete round reads the build's state
 * back from AWS and from its progress object (progress.ts), so every step may repeat.
 */
import {
  _InstanceType,
  CreateSnapshotCommand,
  DescribeInstancesCommand,
  EC2Client,
  Instance,
  RunInstancesCommand,
  RunInstancesCommandInput,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { HELPER_SSM_DOCUMENT, HELPER_VOLUMES, HelperInstanceBuildProperties } from '../types';
import { clock } from './clock';
import { BuildFailure, outputTail } from './failure';
import { helperScript, helperUserData, runShellScriptCommands, SCRIPT_MESSAGE_PREFIX } from './helper-script';
import { deleteSnapshot, describeOwn, describeOwnSnapshot, findBuildSnapshots, isYoung, NOT_FOUND_GRACE_MS, removeById, snapshotWait, timeOf } from './image';
import { StepLog } from './log';
import { progressPercentOf } from './stages';
import { isRecordedComplete } from './build-record';
import { HelperProgress, readProgress, writeProgress } from './progress';
import { BuildSpec, Tag } from './properties';
import { presignStagedObject } from './presign';
import { afterCreateRetry, isRetryableError, RetryOptions, withRetry } from './retry';
import { stagingKeys } from './staging';

/** EC2 starts an instance in a minute or two; much longer means it will not. */
const BOOT_TIMEOUT_MS = 10 * 60_000;
/** Amazon Linux's SSM agent registers within a few minutes of boot; much longer means it cannot reach SSM. */
const SSM_REGISTRATION_TIMEOUT_MS = 15 * 60_000;
/** How long the helper script may run (SSM executionTimeout, seconds). */
const SCRIPT_TIMEOUT_SECONDS = 1800;
/** How much of the script's stderr goes into the error CloudFormation shows (failure.ts keeps the response small). */
const STDERR_TAIL_CHARS = 300;
/**
 * The helper shuts itself down (and so terminates, with its volumes) this long after boot if the
 * build has not terminated it: nothing is left running even if every invocation of the handler were
 * lost. Far beyond the handler's own deadline (index.ts).
 */
export const HELPER_SELF_DESTRUCT_MINUTES = 90;

/**
 * The helper's instance profile is created in the same deployment, seconds before RunInstances, and
 * IAM changes take a while to reach EC2: until then RunInstances answers InvalidParameterValue
 * "Invalid IAM Instance Profile name/ARN". Only that error is worth waiting for.
 */
export function isInstanceProfileNotYetVisible(err: unknown): boolean {
  const e = err as { name?: string; message?: string } | undefined;
  return e?.name === 'InvalidParameterValue' && /iam instance profile/i.test(e.message ?? '');
}

/** Full-jitter delays capped at 20 s over 15 attempts: about two minutes on average for IAM to propagate. */
export const RUN_INSTANCES_RETRY: RetryOptions = {
  attempts: 15,
  baseDelayMs: 2000,
  maxDelayMs: 20_000,
  // No capacity is a server error (EC2 API reference, "Error codes"), but waiting in the same zone
  // rarely helps: the next subnet is tried instead.
  isRetryable: (err) => (isRetryableError(err) && !isNoCapacity(err)) || isInstanceProfileNotYetVisible(err),
};

/** EC2 has no capacity for the instance type in the subnet's availability zone now. */
export function isNoCapacity(err: unknown): boolean {
  return (err as { name?: string } | undefined)?.name === 'InsufficientInstanceCapacity';
}

/** The account's On-Demand quota (vCPUs, or on old accounts instances) is used up: no other zone helps. */
export function isLaunchQuotaExceeded(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  return name === 'VcpuLimitExceeded' || name === 'InstanceLimitExceeded';
}

export interface HelperContext {
  readonly ec2: EC2Client;
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly buildId: string;
  readonly spec: BuildSpec;
  readonly tags: readonly Tag[];
  readonly log: StepLog;
}

/** The subnets the helper may be launched in, in order: SubnetId, then those of the other zones (types.ts). */
export function helperSubnets(helper: HelperInstanceBuildProperties): string[] {
  return [helper.SubnetId, ...(helper.SubnetIds ?? []).filter((id) => id !== helper.SubnetId)];
}

/**
 * The RunInstances client token of the launch in the `index`-th helper subnet: the build id in the
 * first (as builds always had), the build id and the index in the others, since the same token
 * with another subnet is IdempotentParameterMismatch. Every launch carries the build's tags, by
 * which cleanup finds it whatever its token.
 */
export function launchClientToken(buildId: string, index: number): string {
  return index === 0 ? buildId : `${buildId}-${index}`;
}

/**
 * Launches the helper with its data volume, in the first helper subnet whose zone has capacity for
 * its type. Each subnet's launch has its own client token: a repeat (a retried request, a later
 * round that did not learn the id) gets the same instance back ("Ensuring idempotency in Amazon EC2
 * API requests": for at least 24 hours after it terminates).
 */
export async function launchHelper(ctx: HelperContext): Promise<string> {
  const helper = ctx.spec.helper!;
  const subnets = helperSubnets(helper);
  for (const [index, subnetId] of subnets.entries()) {
    let launched;
    try {
      launched = await withRetry(`ec2:RunInstances (${helper.InstanceType} in ${subnetId})`, () =>
        ctx.ec2.send(new RunInstancesCommand(runInstancesInput(ctx, subnetId, launchClientToken(ctx.buildId, index)))),
      RUN_INSTANCES_RETRY);
    } catch (err) {
      if (isLaunchQuotaExceeded(err)) {
        throw new BuildFailure(
          `EC2 refused to launch the helper (${helper.InstanceType}): the account's On-Demand instance quota is used up (${(err as Error).name}: ${(err as Error).message}). ` +
            `Raise ${onDemandQuotaName(helper.InstanceType)} (vCPUs) in Service Quotas, or stop other instances, then redeploy.`,
        );
      }
      if (isNoCapacity(err)) {
        ctx.log.step('run-instances-no-capacity', { subnetId, instanceType: helper.InstanceType });
        continue;
      }
      throw err;
    }
    const instanceId = launched.Instances?.[0]?.InstanceId;
    if (!instanceId) {
      throw new BuildFailure(`ec2:RunInstances launched no instance for build ${ctx.buildId}.`);
    }
    ctx.log.step('run-instances', { instanceId, subnetId });
    ctx.log.stage('helper-launched', { instanceId });
    return instanceId;
  }
  throw new BuildFailure(
    `EC2 has no capacity for the helper's type ${helper.InstanceType} in the availability zone of any helper subnet (${subnets.join(', ')}; InsufficientInstanceCapacity). ` +
      'Redeploy later, or choose another type (BuildStrategy.helperInstance({ instanceType })) or subnets in more zones (vpcSubnets).',
  );
}

/**
 * The On-Demand vCPU quota an instance type counts against (Service Quotas, EC2): the standard
 * families (A, C, D, H, I, M, R, T, Z) share one; the others have their own.
 */
export function onDemandQuotaName(instanceType: string): string {
  const family = /^[a-z]+/.exec(instanceType)?.[0] ?? '';
  return /^[acdhimrtz]/.test(family) && !/^(?:dl|inf|trn|hpc|mac|u-)/.test(instanceType)
    ? 'the quota "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"'
    : `the Running On-Demand quota of the ${family} family`;
}

/**
 * The helper another round launched in a subnet other than the first, whose answer was lost: found
 * by its client token, so that a later round does not launch a second helper in the first subnet.
 * (A filtered read may miss an instance launched seconds ago; the build's tags still let cleanup
 * find it.)
 */
async function findLaunchedHelper(ctx: HelperContext): Promise<string | undefined> {
  const subnets = helperSubnets(ctx.spec.helper!);
  if (subnets.length < 2) {
    return undefined;
  }
  const tokens = subnets.map((_, index) => launchClientToken(ctx.buildId, index));
  const response = await withRetry('ec2:DescribeInstances', () => ctx.ec2.send(new DescribeInstancesCommand({
    Filters: [{ Name: 'client-token', Values: tokens }, { Name: 'instance-state-name', Values: ['pending', 'running'] }],
  })));
  return response.Reservations?.flatMap((r) => r.Instances ?? []).find((instance) => instance.InstanceId)?.InstanceId;
}

function runInstancesInput(ctx: HelperContext, subnetId: string, clientToken: string): RunInstancesCommandInput {
  const helper = ctx.spec.helper!;
  const tags = [...ctx.tags];
  return {
    ClientToken: clientToken,
    ImageId: helper.ImageId,
    InstanceType: helper.InstanceType as _InstanceType,
    MinCount: 1,
    MaxCount: 1,
    SubnetId: subnetId,
    SecurityGroupIds: [helper.SecurityGroupId],
    IamInstanceProfile: { Arn: helper.InstanceProfileArn },
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
    // A helper that shuts itself down must not linger as a stopped instance.
    InstanceInitiatedShutdownBehavior: 'terminate',
    UserData: Buffer.from(helperUserData(ctx.buildId, HELPER_SELF_DESTRUCT_MINUTES)).toString('base64'),
    BlockDeviceMappings: [
      {
        DeviceName: HELPER_VOLUMES.dataDeviceName,
        Ebs: {
          VolumeSize: ctx.spec.volumeSizeGiB,
          VolumeType: HELPER_VOLUMES.volumeType,
          DeleteOnTermination: true,
          Encrypted: ctx.spec.encrypted || undefined,
          KmsKeyId: ctx.spec.encrypted ? ctx.spec.kmsKeyArn : undefined,
        },
      },
      // The root volume as AL2023's AMI maps it, named here so that the role's bound on the
      // volumes a launch creates is the handler's, not the AMI's (types.ts).
      {
        DeviceName: HELPER_VOLUMES.rootDeviceName,
        Ebs: { VolumeSize: HELPER_VOLUMES.rootSizeGiB, VolumeType: HELPER_VOLUMES.volumeType, DeleteOnTermination: true },
      },
    ],
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
      { ResourceType: 'network-interface', Tags: tags },
    ],
  };
}

/** Where an isComplete round of a helper build got to. */
export type HelperRound =
  | { readonly done: false; readonly waitingFor: string }
  | { readonly done: true; readonly snapshotId: string; readonly instanceId: string };

/**
 * One isComplete round: from the launched helper to a completed snapshot of its written volume.
 * @param knownInstanceId the helper onEvent launched (undefined when RunInstances' answer was lost)
 * @param startedAt when onEvent began (the instance is at most that old)
 */
export async function advanceHelperBuild(ctx: HelperContext, knownInstanceId: string | undefined, startedAt: number): Promise<HelperRound> {
  const bucket = ctx.spec.stagingBucket!;
  let progress = await readProgress(ctx.s3, bucket, ctx.buildId);
  let instanceId = knownInstanceId ?? progress.instanceId;
  if (!instanceId) {
    // onEvent did not learn the id (RunInstances' answer was lost): the client token gets it now.
    instanceId = (await findLaunchedHelper(ctx)) ?? (await launchHelper(ctx));
    progress = { ...progress, instanceId };
    await writeProgress(ctx.s3, bucket, ctx.buildId, progress);
  }
  const snapshotId = progress.snapshotIds?.[0];
  if (snapshotId) {
    return awaitSnapshot(ctx, instanceId, snapshotId, progress.snapshotCreatedAt ?? startedAt);
  }
  const instance = await describeHelper(ctx, instanceId, startedAt);
  if (!instance) {
    return { done: false, waitingFor: `EC2 to show the new helper instance ${instanceId}` };
  }
  const state = instance.State?.Name;
  const launchedAt = timeOf(instance.LaunchTime) ?? startedAt;
  if (state === 'pending') {
    if (clock().now() - launchedAt > BOOT_TIMEOUT_MS) {
      throw new BuildFailure(`The helper instance ${instanceId} has been pending for ${minutes(clock().now() - launchedAt)} minutes; EC2 did not start it. Redeploy to try again.`);
    }
    return { done: false, waitingFor: `the helper instance ${instanceId} to start` };
  }
  if (state !== 'running') {
    // Another delivery of the same event may have snapshotted the volume and terminated the helper
    // (its progress object removed, or rewritten by a repeated onEvent): the build's snapshot, found
    // by its tag, carries on the build (a recorded complete one first, else the oldest).
    const snapshots = (await findBuildSnapshots(ctx.ec2, ctx.buildId)).filter((s) => s.State !== 'error')
      .sort((a, b) => Number(isRecordedComplete(b.Tags)) - Number(isRecordedComplete(a.Tags)) || (timeOf(a.StartTime) ?? 0) - (timeOf(b.StartTime) ?? 0));
    if (snapshots[0]) {
      ctx.log.step('helper-gone-snapshot-found', { instanceId, state, snapshotId: snapshots[0].SnapshotId });
      return awaitSnapshot(ctx, instanceId, snapshots[0].SnapshotId!, timeOf(snapshots[0].StartTime) ?? startedAt);
    }
    throw new BuildFailure(
      `The helper instance ${instanceId} is ${state ?? 'gone'} before its volume was written` +
      `${instance.StateReason?.Message ? ` (${instance.StateReason.Message})` : ''}. Redeploy to start a new build.`,
    );
  }
  if (!progress.commandId) {
    return startScript(ctx, instance, launchedAt, progress);
  }
  return watchScript(ctx, instance, progress);
}

/** The helper by id; undefined while EC2 does not know the new instance yet. */
async function describeHelper(ctx: HelperContext, instanceId: string, startedAt: number): Promise<Instance | undefined> {
  const instance = await describeOwn(
    'ec2:DescribeInstances',
    async () => (await ctx.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]?.Instances?.[0],
    startedAt,
    () => new BuildFailure(`The helper instance ${instanceId} is not found after ${minutes(NOT_FOUND_GRACE_MS)} minutes (terminated outside CloudFormation?). Redeploy to start a new build.`),
  );
  if (!instance) {
    // "If you successfully run RunInstances and then immediately run another command using the
    // instance ID ... you might get InvalidInstanceID.NotFound. This does not mean the instance does not exist."
    ctx.log.step('wait-helper-visible', { instanceId });
  }
  return instance;
}

/** The data volume of the helper's block device mapping, once EC2 lists it. */
function dataVolumeOf(instance: Instance): string | undefined {
  return instance.BlockDeviceMappings?.find((mapping) => mapping.DeviceName === HELPER_VOLUMES.dataDeviceName)?.Ebs?.VolumeId;
}

async function startScript(ctx: HelperContext, instance: Instance, launchedAt: number, progress: HelperProgress): Promise<HelperRound> {
  const instanceId = instance.InstanceId!;
  if (!(await isSsmOnline(ctx, instanceId))) {
    const runningForMs = clock().now() - launchedAt;
    if (runningForMs > SSM_REGISTRATION_TIMEOUT_MS) {
      throw new BuildFailure(
        `The helper instance ${instanceId} has run for ${minutes(runningForMs)} minutes without its SSM agent coming online. ` +
          'Its subnet needs a route to the SSM and S3 endpoints (a NAT gateway, or VPC endpoints for ssm, ssmmessages, ec2messages and S3).',
      );
    }
    return { done: false, waitingFor: `the SSM agent of the helper instance ${instanceId} to come online` };
  }
  const volumeId = dataVolumeOf(instance);
  if (!volumeId) {
    return { done: false, waitingFor: `EC2 to list the data volume of the helper instance ${instanceId}` };
  }
  // The progress object is written right after SendCommand; should that write have failed, the
  // command is found by its comment instead of being sent twice.
  const earlier = await findScriptInvocation(ctx, instanceId);
  const commandId = earlier ?? (await sendScript(ctx, instanceId, volumeId, launchedAt));
  await writeProgress(ctx.s3, ctx.spec.stagingBucket!, ctx.buildId, { ...progress, commandId, commandSentAt: clock().now() });
  return { done: false, waitingFor: `the helper script (SSM command ${commandId}) on ${instanceId}` };
}

async function isSsmOnline(ctx: HelperContext, instanceId: string): Promise<boolean> {
  const response = await withRetry('ssm:DescribeInstanceInformation', () =>
    ctx.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [instanceId] }] })),
  );
  return response.InstanceInformationList?.[0]?.PingStatus === 'Online';
}

async function findScriptInvocation(ctx: HelperContext, instanceId: string): Promise<string | undefined> {
  const response = await withRetry('ssm:ListCommandInvocations', () =>
    ctx.ssm.send(new ListCommandInvocationsCommand({ InstanceId: instanceId, MaxResults: 50 })),
  );
  return response.CommandInvocations?.find((invocation) => invocation.Comment === ctx.buildId)?.CommandId;
}

async function sendScript(ctx: HelperContext, instanceId: string, volumeId: string, launchedAt: number): Promise<string> {
  const keys = stagingKeys(ctx.buildId);
  const bucket = ctx.spec.stagingBucket!;
  // Signed now, for this command only (presign.ts): the helper's role has no S3 permission.
  const [blocksSource, manifestSource] = await Promise.all([keys.blocks, keys.manifest].map((key) => presignStagedObject(ctx.s3, bucket, key)));
  const script = helperScript({ blocksSource, manifestSource, volumeId });
  // The first call on the new instance: its tags may not have reached IAM yet (retry.ts).
  const sent = await withRetry('ssm:SendCommand', () =>
    ctx.ssm.send(
      new SendCommandCommand({
        DocumentName: HELPER_SSM_DOCUMENT,
        InstanceIds: [instanceId],
        Comment: ctx.buildId,
        Parameters: { commands: runShellScriptCommands(script), executionTimeout: [String(SCRIPT_TIMEOUT_SECONDS)] },
      }),
    ),
  afterCreateRetry(launchedAt, clock().now()));
  const commandId = sent.Command?.CommandId;
  if (!commandId) {
    throw new BuildFailure(`ssm:SendCommand returned no command id for the helper instance ${instanceId}.`);
  }
  ctx.log.step('send-helper-script', { instanceId, volumeId, commandId });
  ctx.log.stage('agent-online', { instanceId, commandId });
  return commandId;
}

const RUNNING_STATUSES = new Set(['Pending', 'InProgress', 'Delayed']);

/**
 * Why the script failed, from its stderr: its own last message if it wrote one (SSM returns only
 * the first 8,000 characters of stderr, and other tools may write more), else the end of stderr.
 */
export function scriptReason(stderr: string | undefined): string {
  const own = (stderr ?? '').split('\n').filter((line) => line.startsWith(SCRIPT_MESSAGE_PREFIX)).pop();
  return outputTail(own ?? stderr, STDERR_TAIL_CHARS);
}

/** SSM StatusDetails of an invocation its agent never received (SSM user guide, "Understanding command statuses"). */
const UNDELIVERED_DETAILS = new Set(['Delivery Timed Out', 'Undeliverable']);

/** Why the helper script did not succeed, worded for the user from the invocation's Status and StatusDetails. */
export function scriptFailure(
  instanceId: string,
  commandId: string,
  invocation: { readonly Status?: string; readonly StatusDetails?: string; readonly ResponseCode?: number; readonly StandardErrorContent?: string },
): string {
  const status = invocation.Status ?? '';
  const details = invocation.StatusDetails && invocation.StatusDetails !== status ? `${status}, ${invocation.StatusDetails}` : status;
  if (status === 'Cancelled' || status === 'Cancelling') {
    return `The helper script (SSM command ${commandId}) on ${instanceId} was cancelled before it finished (${details}): ssm:CancelCommand was called on it. ` +
      'Redeploy to start a new build.';
  }
  if (UNDELIVERED_DETAILS.has(invocation.StatusDetails ?? '')) {
    return `SSM could not deliver the helper script (command ${commandId}, ${details}) to the helper instance ${instanceId}: its SSM agent could not be reached. ` +
      'Check that the helper\'s subnet reaches the ssm, ssmmessages and ec2messages endpoints (a public IP and an internet gateway, a NAT gateway, ' +
      'or VPC endpoints), that its security group allows outbound HTTPS, and that the instance kept running; then redeploy.';
  }
  return `The helper instance ${instanceId} could not write the disk image (SSM command ${commandId} ${details}, exit code ${invocation.ResponseCode}): ` +
    `${scriptReason(invocation.StandardErrorContent) || '(no output)'}`;
}

async function watchScript(ctx: HelperContext, instance: Instance, progress: HelperProgress): Promise<HelperRound> {
  const instanceId = instance.InstanceId!;
  const commandId = progress.commandId!;
  let invocation;
  try {
    invocation = await withRetry('ssm:GetCommandInvocation', () =>
      ctx.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId })),
    );
  } catch (err) {
    if ((err as Error).name === 'InvocationDoesNotExist' && isYoung(progress.commandSentAt)) {
      return { done: false, waitingFor: `SSM to show the command ${commandId}` };
    }
    throw err;
  }
  const status = invocation.Status ?? '';
  if (RUNNING_STATUSES.has(status)) {
    ctx.log.step('wait-helper-script', { instanceId, commandId, status });
    return { done: false, waitingFor: `the helper script (SSM command ${commandId}, ${status}) on ${instanceId}` };
  }
  if (status !== 'Success') {
    throw new BuildFailure(scriptFailure(instanceId, commandId, invocation));
  }
  // The script exits 0 only once every block is written, synced and read back (helper-script.ts).
  ctx.log.stage('verified', { instanceId, commandId });
  return snapshotVolume(ctx, instance, progress);
}

/**
 * Snapshots the written volume. CreateSnapshot has no client token: its id goes into the progress
 * object at once; if that write fails, the snapshot is deleted again by its id, so that no round
 * makes a snapshot nobody knows of.
 */
async function snapshotVolume(ctx: HelperContext, instance: Instance, progress: HelperProgress): Promise<HelperRound> {
  const volumeId = dataVolumeOf(instance);
  if (!volumeId) {
    return { done: false, waitingFor: `EC2 to list the data volume of ${instance.InstanceId}` };
  }
  const launchedAt = timeOf(instance.LaunchTime);
  const snapshot = await withRetry('ec2:CreateSnapshot', () =>
    ctx.ec2.send(
      new CreateSnapshotCommand({
        VolumeId: volumeId,
        Description: `${ctx.spec.name} unikernel disk (mirage-unikernel-ami build ${ctx.buildId})`,
        TagSpecifications: [{ ResourceType: 'snapshot', Tags: [...ctx.tags] }],
      }),
    ),
  afterCreateRetry(launchedAt, clock().now()));
  const snapshotId = snapshot.SnapshotId!;
  const createdAt = clock().now();
  ctx.log.step('create-snapshot', { volumeId, snapshotId });
  try {
    await writeProgress(ctx.s3, ctx.spec.stagingBucket!, ctx.buildId, {
      ...progress,
      snapshotIds: [...(progress.snapshotIds ?? []), snapshotId],
      snapshotCreatedAt: progress.snapshotCreatedAt ?? createdAt,
    });
  } catch (err) {
    await deleteSnapshot(ctx.ec2, snapshotId, createdAt).catch(() => false);
    throw err;
  }
  return { done: false, waitingFor: `snapshot ${snapshotId} to complete` };
}

async function awaitSnapshot(ctx: HelperContext, instanceId: string, snapshotId: string, createdAt: number): Promise<HelperRound> {
  const snapshot = await describeOwnSnapshot(ctx.ec2, snapshotId, ctx.buildId, createdAt);
  if (!snapshot) {
    return { done: false, waitingFor: `EC2 to show the new snapshot ${snapshotId}` };
  }
  const waitingFor = snapshotWait(snapshot);
  ctx.log.stage('snapshot', { snapshotId, progressPercent: snapshot.State === 'completed' ? 100 : progressPercentOf(snapshot.Progress) });
  return waitingFor ? { done: false, waitingFor } : { done: true, snapshotId, instanceId };
}

/**
 * Terminates the helper by its id (terminating also deletes its volumes: DeleteOnTermination).
 * @returns whether EC2 accepted it (false while it does not know the new instance yet)
 */
export function terminateHelper(ec2: EC2Client, instanceId: string, launchedAt?: number): Promise<boolean> {
  return removeById('ec2:TerminateInstances', () => ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })), launchedAt);
}

/**
 * The snapshots of this build other than `keep`: duplicates of a CreateSnapshot whose answer came
 * back but could not be recorded, or was lost (it has no client token). Deleted before success.
 * @returns how many are still there
 */
export async function deleteDuplicateSnapshots(ctx: HelperContext, keep: string, recorded: readonly string[], createdAt: number | undefined): Promise<number> {
  const listed = (await findBuildSnapshots(ctx.ec2, ctx.buildId)).map((s) => s.SnapshotId!);
  let left = 0;
  for (const snapshotId of new Set([...recorded, ...listed])) {
    if (snapshotId !== keep) {
      const gone = await deleteSnapshot(ctx.ec2, snapshotId, createdAt);
      ctx.log.step('delete-duplicate-snapshot', { snapshotId, gone });
      left += gone ? 0 : 1;
    }
  }
  return left;
}

function minutes(ms: number): number {
  return Math.round(ms / 60_000);
}
