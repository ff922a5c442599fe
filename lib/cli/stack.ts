/**
 * What `watch` and `builds` read of a stack (CloudFormation's read-only calls): the stack, its
 * MirageUnikernelAmi resources, the handlers' log group and the staging bucket.
 */
import {
  CloudFormationClient,
  DescribeStackResourceCommand,
  DescribeStackResourcesCommand,
  DescribeStacksCommand,
  StackResource,
} from '@aws-sdk/client-cloudformation';
import { UNIKERNEL_AMI_RESOURCE_TYPE } from '../unikernel-ami/types';
import { UsageError } from './io';

export interface StackView {
  readonly stackId: string;
  readonly stackName: string;
  readonly status: string;
  readonly statusReason?: string;
}

/** The stack by name or id; an unknown one is the user's mistake, said in one line. */
export async function describeStack(cfn: CloudFormationClient, nameOrId: string): Promise<StackView> {
  try {
    const stack = (await cfn.send(new DescribeStacksCommand({ StackName: nameOrId }))).Stacks?.[0];
    if (!stack?.StackId) {
      throw new UsageError(`CloudFormation knows no stack ${nameOrId}`);
    }
    return { stackId: stack.StackId, stackName: stack.StackName ?? nameOrId, status: stack.StackStatus ?? 'UNKNOWN', statusReason: stack.StackStatusReason };
  } catch (err) {
    if ((err as Error).name === 'ValidationError' && /does not exist/.test((err as Error).message)) {
      throw new UsageError(`CloudFormation knows no stack ${nameOrId} in this region (check --region / AWS_REGION)`);
    }
    throw err;
  }
}

export async function stackResources(cfn: CloudFormationClient, stackId: string): Promise<StackResource[]> {
  return (await cfn.send(new DescribeStackResourcesCommand({ StackName: stackId }))).StackResources ?? [];
}

/** The stack's Custom::MirageUnikernelAmi resources. */
export function unikernelResources(resources: readonly StackResource[]): StackResource[] {
  return resources.filter((r) => r.ResourceType === UNIKERNEL_AMI_RESOURCE_TYPE);
}

/**
 * The resource a CONSTRUCT_PATH names: its logical id, or its construct path (the template's
 * `aws:cdk:path` metadata, which `cdk deploy` writes unless path metadata is turned off), with or
 * without the stack's name in front; the path of the MirageUnikernelAmi construct names the custom
 * resource inside it. Without a path, the stack's only such resource.
 */
export async function selectResource(cfn: CloudFormationClient, stack: StackView, resources: readonly StackResource[], constructPath?: string): Promise<StackResource> {
  const candidates = unikernelResources(resources);
  const names = candidates.map((r) => r.LogicalResourceId).join(', ');
  if (candidates.length === 0) {
    throw new UsageError(`stack ${stack.stackName} has no ${UNIKERNEL_AMI_RESOURCE_TYPE} resource`);
  }
  if (constructPath === undefined) {
    if (candidates.length > 1) {
      throw new UsageError(`stack ${stack.stackName} has ${candidates.length} MirageUnikernelAmi resources (${names}); name one by its CONSTRUCT_PATH or logical id`);
    }
    return candidates[0];
  }
  const byLogicalId = candidates.find((r) => r.LogicalResourceId === constructPath);
  if (byLogicalId) {
    return byLogicalId;
  }
  const wanted = constructPath.replace(/^\/+|\/+$/g, '');
  for (const resource of candidates) {
    const detail = (await cfn.send(new DescribeStackResourceCommand({ StackName: stack.stackId, LogicalResourceId: resource.LogicalResourceId }))).StackResourceDetail;
    const cdkPath = metadataPath(detail?.Metadata);
    if (cdkPath && [wanted, `${stack.stackName}/${wanted}`].some((p) => cdkPath === p || cdkPath.startsWith(`${p}/`))) {
      return resource;
    }
  }
  throw new UsageError(`no MirageUnikernelAmi resource of stack ${stack.stackName} has the logical id or construct path ${constructPath} (its resources: ${names})`);
}

function metadataPath(metadata: string | undefined): string | undefined {
  try {
    const path = (JSON.parse(metadata ?? '{}') as Record<string, unknown>)['aws:cdk:path'];
    return typeof path === 'string' ? path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A resource the build infrastructure creates, by the construct id in its logical id (the CDK makes
 * logical ids from the construct path and an 8-digit hash: `...BuildInfrastructureHandlerLogs6C819567`).
 */
function infrastructureResource(resources: readonly StackResource[], type: string, constructId: string): string | undefined {
  const pattern = new RegExp(`BuildInfrastructure${constructId}[0-9A-F]{8}$`);
  return resources.find((r) => r.ResourceType === type && pattern.test(r.LogicalResourceId ?? '') && r.PhysicalResourceId)?.PhysicalResourceId;
}

/** The log group both handler functions write to (build-infrastructure.ts, `HandlerLogs`). */
export function handlerLogGroup(resources: readonly StackResource[]): string | undefined {
  return infrastructureResource(resources, 'AWS::Logs::LogGroup', 'HandlerLogs');
}

/** The bucket helper builds stage their disk images in (build-infrastructure.ts, `StagingBucket`). */
export function stagingBucketOf(resources: readonly StackResource[]): string | undefined {
  return infrastructureResource(resources, 'AWS::S3::Bucket', 'StagingBucket');
}

/** Whether a CloudFormation status is one of an operation under way. */
export function inProgress(status: string | undefined): boolean {
  return (status ?? '').endsWith('_IN_PROGRESS');
}
