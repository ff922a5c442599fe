/**
 * The helper-instance strategy: the handler stages the disk image in S3, a transient Amazon Linux
 * instance writes it onto a new EBS volume (through SSM, see helper-script.ts), and the volume is
 * snapshotted. Every step is idempotent, because isComplete repeats until the build is done.
 */
import {
  _InstanceType,
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DeleteVolumeCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  EC2Client,
  Instance,
  RunInstancesCommand,
  TerminateInstancesCommand,
  Volume,
} from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import {
  CommandInvocation,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { clock } from './clock';
import { helperScript, runShellScriptCommands } from './helper-script';
import { findBuildSnapshots, ignoringNotFound } from './image';
import { StepLog } from './log';
import { BuildSpec, buildFilter, Tag } from './properties';
import { isRetryableError, RetryOptions, withRetry } from './retry';
import { deleteStagedImage, stagingKeys } from './staging';

/** The device name the volume is attached as; on Nitro instances it shows up as NVMe anyway. */
export const HELPER_DEVICE_NAME = '/dev/sdf';
/** The helper volume is transient and written once; gp3 is the cheapest general-purpose type. */
const HELPER_VOLUME_TYPE = 'gp3';
/** Amazon Linux's SSM agent registers within a few minutes of boot; much longer means it cannot reach SSM. */
const SSM_REGISTRATION_TIMEOUT_MS = 15 * 60_000;
/** How long the helper script may run (SSM executionTimeout, seconds). */
const SCRIPT_TIMEOUT_SECONDS = 1800;

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
  isRetryable: (err) => isRetryableError(err) || isInstanceProfileNotYetVisible(err),
};

export interface HelperContext {
  readonly ec2: EC2Client;
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly buildId: string;
  readonly spec: BuildSpec;
  readonly tags: readonly Tag[];
  readonly log: StepLog;
}

/**
 * Launches the helper and creates the volume it writes, both with the build id as client token so
 * that a retried onEvent gets the same instance and volume back.
 */
export async function launchHelper(ctx: HelperContext): Promise<{ instanceId: string; volumeId: string }> {
  const helper = ctx.spec.helper!;
  const subnets = await withRetry('ec2:DescribeSubnets', () => ctx.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [helper.SubnetId] })));
  const availabilityZone = subnets.Subnets?.[0]?.AvailabilityZone;
  if (!availabilityZone) {
    throw new Error(`Subnet ${helper.SubnetId} of the helper instance was not found. Give a subnet of this account and region.`);
  }
  const tags = [...ctx.tags];
  const launched = await withRetry(`ec2:RunInstances (${helper.InstanceType} in ${helper.SubnetId})`, () =>
    ctx.ec2.send(
      new RunInstancesCommand({
        ClientToken: ctx.buildId,
        ImageId: helper.ImageId,
        InstanceType: helper.InstanceType as _InstanceType,
        MinCount: 1,
        MaxCount: 1,
        SubnetId: helper.SubnetId,
        SecurityGroupIds: [helper.SecurityGroupId],
        IamInstanceProfile: { Arn: helper.InstanceProfileArn },
        MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
        // A helper that shuts itself down must not linger as a stopped instance.
        InstanceInitiatedShutdownBehavior: 'terminate',
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tags },
          { ResourceType: 'volume', Tags: tags },
          { ResourceType: 'network-interface', Tags: tags },
        ],
      }),
    ),
    RUN_INSTANCES_RETRY,
  );
  const instanceId = launched.Instances?.[0]?.InstanceId;
  if (!instanceId) {
    throw new Error(`ec2:RunInstances launched no instance for build ${ctx.buildId}.`);
  }
  ctx.log.step('run-instances', { instanceId, availabilityZone });
  const volume = await withRetry(`ec2:CreateVolume (${ctx.spec.volumeSizeGiB} GiB in ${availabilityZone})`, () =>
    ctx.ec2.send(
      new CreateVolumeCommand({
        ClientToken: `${ctx.buildId}-volume`,
        AvailabilityZone: availabilityZone,
        Size: ctx.spec.volumeSizeGiB,
        VolumeType: HELPER_VOLUME_TYPE,
        Encrypted: ctx.spec.encrypted || undefined,
        KmsKeyId: ctx.spec.encrypted ? ctx.spec.kmsKeyArn : undefined,
        TagSpecifications: [{ ResourceType: 'volume', Tags: tags }],
      }),
    ),
  );
  ctx.log.step('create-volume', { volumeId: volume.VolumeId, instanceId });
  return { instanceId, volumeId: volume.VolumeId! };
}

async function describeInstance(ctx: HelperContext, instanceId: string): Promise<Instance | undefined> {
  const response = await withRetry('ec2:DescribeInstances', () => ctx.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })));
  return response.Reservations?.[0]?.Instances?.[0];
}

async function describeVolume(ctx: HelperContext, volumeId: string): Promise<Volume> {
  const response = await withRetry('ec2:DescribeVolumes', () => ctx.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] })));
  const volume = response.Volumes?.[0];
  if (!volume) {
    throw new Error(`Volume ${volumeId} of build ${ctx.buildId} has disappeared (deleted by hand?). Redeploy to start a new build.`);
  }
  return volume;
}

/** The invocation of the helper script on this instance, found by its comment (the build id). */
async function findScriptInvocation(ctx: HelperContext, instanceId: string): Promise<CommandInvocation | undefined> {
  const response = await withRetry('ssm:ListCommandInvocations', () =>
    ctx.ssm.send(new ListCommandInvocationsCommand({ InstanceId: instanceId })),
  );
  return response.CommandInvocations?.find((invocation) => invocation.Comment === ctx.buildId);
}

async function isSsmOnline(ctx: HelperContext, instanceId: string): Promise<boolean> {
  const response = await withRetry('ssm:DescribeInstanceInformation', () =>
    ctx.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [instanceId] }] })),
  );
  return response.InstanceInformationList?.[0]?.PingStatus === 'Online';
}

const FINAL_FAILURES = new Set(['Failed', 'TimedOut', 'Cancelled', 'Cancelling']);
/** How much of the script's stderr goes into the error CloudFormation shows (its Reason field is short). */
const STDERR_TAIL_CHARS = 1500;

/** Throws with the tail of the script's stderr. */
async function failWithScriptOutput(ctx: HelperContext, instanceId: string, invocation: CommandInvocation): Promise<never> {
  const result = await withRetry('ssm:GetCommandInvocation', () =>
    ctx.ssm.send(new GetCommandInvocationCommand({ CommandId: invocation.CommandId, InstanceId: instanceId })),
  );
  const stderr = (result.StandardErrorContent ?? '').trim().slice(-STDERR_TAIL_CHARS);
  throw new Error(
    `The helper instance ${instanceId} could not write the disk image (SSM command ${invocation.CommandId} ${invocation.Status}, ` +
      `exit code ${result.ResponseCode}): ${stderr || '(no output)'}`,
  );
}

/**
 * Drives the helper until its script has written and verified the volume.
 * @returns true once the script has succeeded
 */
async function volumeWritten(ctx: HelperContext, instanceId: string, volumeId: string): Promise<boolean> {
  const invocation = await findScriptInvocation(ctx, instanceId);
  if (invocation?.Status === 'Success') {
    return true;
  }
  if (invocation && FINAL_FAILURES.has(invocation.Status ?? '')) {
    return failWithScriptOutput(ctx, instanceId, invocation);
  }
  if (invocation) {
    ctx.log.step('wait-helper-script', { instanceId, commandId: invocation.CommandId, status: invocation.Status });
    return false;
  }
  const instance = await describeInstance(ctx, instanceId);
  const state = instance?.State?.Name;
  if (state !== 'running') {
    if (state === 'pending') {
      ctx.log.step('wait-helper-running', { instanceId, state });
      return false;
    }
    throw new Error(
      `The helper instance ${instanceId} is ${state ?? 'gone'} before writing the image` +
        `${instance?.StateReason?.Message ? ` (${instance.StateReason.Message})` : ''}. Redeploy to start a new build.`,
    );
  }
  if (!(await isSsmOnline(ctx, instanceId))) {
    const runningForMs = clock().now() - (instance?.LaunchTime?.getTime() ?? clock().now());
    if (runningForMs > SSM_REGISTRATION_TIMEOUT_MS) {
      throw new Error(
        `The helper instance ${instanceId} has run for ${Math.round(runningForMs / 60_000)} minutes without its SSM agent coming online. ` +
          'Its subnet needs a route to the SSM and S3 endpoints (a NAT gateway, or VPC endpoints for ssm, ssmmessages, ec2messages and S3).',
      );
    }
    ctx.log.step('wait-helper-ssm', { instanceId, runningForMs });
    return false;
  }
  if (!(await volumeAttached(ctx, instanceId, volumeId))) {
    return false;
  }
  await sendScript(ctx, instanceId, volumeId);
  return false;
}

async function volumeAttached(ctx: HelperContext, instanceId: string, volumeId: string): Promise<boolean> {
  const volume = await describeVolume(ctx, volumeId);
  const attachment = volume.Attachments?.find((a) => a.InstanceId === instanceId);
  if (attachment?.State === 'attached') {
    return true;
  }
  if (volume.State === 'available') {
    await withRetry('ec2:AttachVolume', () =>
      ctx.ec2.send(new AttachVolumeCommand({ InstanceId: instanceId, VolumeId: volumeId, Device: HELPER_DEVICE_NAME })),
    );
    ctx.log.step('attach-volume', { instanceId, volumeId });
  } else {
    ctx.log.step('wait-volume-attach', { instanceId, volumeId, state: volume.State, attachment: attachment?.State });
  }
  return false;
}

async function sendScript(ctx: HelperContext, instanceId: string, volumeId: string): Promise<void> {
  const keys = stagingKeys(ctx.buildId);
  const bucket = ctx.spec.stagingBucket!;
  const script = helperScript({
    blocksSource: `s3://${bucket}/${keys.blocks}`,
    manifestSource: `s3://${bucket}/${keys.manifest}`,
    volumeId,
    region: process.env.AWS_REGION,
  });
  const sent = await withRetry('ssm:SendCommand', () =>
    ctx.ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [instanceId],
        Comment: ctx.buildId,
        Parameters: { commands: runShellScriptCommands(script), executionTimeout: [String(SCRIPT_TIMEOUT_SECONDS)] },
      }),
    ),
  );
  ctx.log.step('send-helper-script', { instanceId, volumeId, commandId: sent.Command?.CommandId });
}

/**
 * One isComplete round of the helper strategy: write the volume, terminate the helper, snapshot the
 * volume (once: an existing snapshot is found by the build's tag).
 * @returns the snapshot id once a previous round created it, undefined while the helper is still at work
 */
export async function advanceHelperBuild(ctx: HelperContext, instanceId: string, volumeId: string): Promise<string | undefined> {
  const existing = (await findBuildSnapshots(ctx.ec2, ctx.buildId))[0];
  if (existing?.SnapshotId) {
    return existing.SnapshotId;
  }
  if (!(await volumeWritten(ctx, instanceId, volumeId))) {
    return undefined;
  }
  await ignoringNotFound('ec2:TerminateInstances', () => ctx.ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })));
  ctx.log.step('terminate-helper', { instanceId });
  // Terminating the helper detaches the volume; snapshot it once detached, so nothing writes to it any more.
  const volume = await describeVolume(ctx, volumeId);
  if (volume.State !== 'available') {
    ctx.log.step('wait-volume-detach', { volumeId, state: volume.State });
    return undefined;
  }
  const snapshot = await withRetry('ec2:CreateSnapshot', () =>
    ctx.ec2.send(
      new CreateSnapshotCommand({
        VolumeId: volumeId,
        Description: `${ctx.spec.name} unikernel disk (mirage-unikernel-ami build ${ctx.buildId})`,
        TagSpecifications: [{ ResourceType: 'snapshot', Tags: [...ctx.tags] }],
      }),
    ),
  );
  ctx.log.step('create-snapshot', { volumeId, snapshotId: snapshot.SnapshotId });
  // Not complete this round: EC2 may not show the new snapshot to DescribeSnapshots yet (eventual
  // consistency); the next round finds it by the build's tag.
  return undefined;
}

export async function deleteVolume(ec2: EC2Client, volumeId: string): Promise<void> {
  await ignoringNotFound('ec2:DeleteVolume', () => ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId })));
}

/**
 * Removes what a build's helper strategy leaves: terminates its instances and deletes its
 * available volumes (found by the build's tag) and staged objects.
 * @returns how many instances and volumes are still there (terminating, or detaching)
 */
export async function removeHelperResources(ec2: EC2Client, s3: S3Client, stagingBucket: string | undefined, buildId: string, log: StepLog): Promise<number> {
  const described = await withRetry('ec2:DescribeInstances', () =>
    ec2.send(
      new DescribeInstancesCommand({
        Filters: [buildFilter(buildId), { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] }],
      }),
    ),
  );
  const instances = (described.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  const toTerminate = instances.filter((i) => i.State?.Name !== 'shutting-down').map((i) => i.InstanceId!);
  if (toTerminate.length > 0) {
    await ignoringNotFound('ec2:TerminateInstances', () => ec2.send(new TerminateInstancesCommand({ InstanceIds: toTerminate })));
    log.step('terminate-helper', { instanceIds: toTerminate.join(',') });
  }
  const volumes = (await withRetry('ec2:DescribeVolumes', () => ec2.send(new DescribeVolumesCommand({ Filters: [buildFilter(buildId)] })))).Volumes ?? [];
  let remainingVolumes = 0;
  for (const volume of volumes) {
    if (volume.State === 'available' || volume.State === 'error') {
      await deleteVolume(ec2, volume.VolumeId!);
      log.step('delete-volume', { volumeId: volume.VolumeId });
    } else if (volume.State !== 'deleted') {
      remainingVolumes++;
    }
  }
  await deleteStagedImage(s3, stagingBucket, buildId);
  return instances.length + remainingVolumes;
}
