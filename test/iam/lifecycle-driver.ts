/**
 * STAND-IN, to be replaced by the reliability work's strict fake and lifecycle driver
 * (test/fixtures/fake-aws and test/fixtures/lifecycle.ts on wip/reliability, not yet on main).
 *
 * A minimal lifecycle driver on the current in-memory fake (test/unikernel-ami/handler/fake-aws.ts),
 * with what it lacks for the IAM proof added here and nowhere else:
 * - every request recorded as RecordedRequest when it arrives (a thin wrapper around the handler's
 *   SDK clients: the tags of the resources it names, as they are then, and the error it got);
 * - the EBS direct APIs (StartSnapshot idempotent by client token, PutSnapshotBlock, CompleteSnapshot);
 * - AWS moving resources on between handler calls (instances start and stop, volumes attach and
 *   detach, the helper script runs, snapshots complete, images become available);
 * - the helper instance's own requests, recorded as the new fake records them (principal
 *   `helper-instance`): its SSM agent registering (UpdateInstanceInformation, the ssmmessages or
 *   ec2messages channel, ListInstanceAssociations) and the script reading the staged objects.
 *
 * The shape follows the new driver (runLifecycle(aws, options) and aws.requests), so that the IAM
 * proof (lifecycle.test.ts) changes its imports only. This driver is NOT as strict as AWS: no
 * eventual consistency, no timing; the reliability work's fake is.
 */
import { CompleteSnapshotCommand, EBSClient, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { mockClient } from 'aws-sdk-client-mock';
import { isBuildId } from '../../lib/unikernel-ami/handler/build-id';
import { clients } from '../../lib/unikernel-ami/handler/clients';
import { IsCompleteResponse, OnEventRequest } from '../../lib/unikernel-ami/handler/events';
import { isComplete, onEvent } from '../../lib/unikernel-ami/handler/index';
import { UnikernelAmiProperties } from '../../lib/unikernel-ami/types';
import { RecordedRequest, RecordedTag } from '../fixtures/recorded-request';
import { AnyRecordedRequest } from './request-authorizations';
import { awsError, FakeAws } from '../unikernel-ami/handler/fake-aws';

/** What the new fake records (its recorded-request.ts adds who made a request). */
export type ProofRecordedRequest = AnyRecordedRequest;

export type Lifecycle = 'create' | 'rebuild' | 'tag-update' | 'delete' | 'retain' | 'failed-create';
export const LIFECYCLES: readonly Lifecycle[] = ['create', 'rebuild', 'tag-update', 'delete', 'retain', 'failed-create'];

export interface LifecycleOptions {
  readonly lifecycle: Lifecycle;
  /** The Create's properties (the synthesized template's, resolved). */
  readonly properties: UnikernelAmiProperties;
  /** The StackId of the events. */
  readonly stackId: string;
  readonly logicalId?: string;
  /** How the helper's SSM agent takes commands. @default 'ssmmessages' */
  readonly agentChannel?: 'ssmmessages' | 'ec2messages';
}

export interface CfnOutcome {
  readonly requestType: 'Create' | 'Update' | 'Delete';
  readonly status: 'SUCCESS' | 'FAILED';
  readonly physicalResourceId: string;
  readonly failureReason?: string;
}

/** The current fake, its requests recorded, with EBS and AWS's progress added. */
export class RecordingAws {
  readonly fake = new FakeAws();
  readonly ebs = mockClient(EBSClient);
  readonly requests: ProofRecordedRequest[] = [];
  agentChannel: 'ssmmessages' | 'ec2messages' = 'ssmmessages';
  /** The next helper script fails (a build that fails part-way). */
  failNextScript = false;
  /** PutSnapshotBlock is refused (a direct build that fails part-way). */
  refuseBlocks = false;
  private phase = '';
  private readonly registered = new Set<string>();
  private readonly completedSnapshots = new Set<string>();
  private readonly snapshotTokens = new Map<string, string>();
  private counter = 0;

  constructor() {
    for (const [service, client] of Object.entries(clients)) {
      (client as { send: unknown }).send = (command: { constructor: { name: string }; input: { [key: string]: unknown } }, ...rest: unknown[]) => {
        const request = {
          service: service as RecordedRequest['service'],
          action: command.constructor.name.replace(/Command$/, ''),
          input: command.input,
          resourceTags: this.tagsNamedIn(command.input),
          principal: 'handler' as const,
          phase: this.phase,
        };
        this.requests.push(request);
        // The class's send is the mock's stub, which reset() replaces: look it up at each call. It may
        // answer synchronously (a value, or a throw).
        return Promise.resolve().then(() => Object.getPrototypeOf(client).send.call(client, command, ...rest)).catch((err: Error) => {
          (request as { error?: string }).error = err.name;
          throw err;
        });
      };
    }
  }

  reset(): void {
    this.fake.reset();
    this.ebs.reset();
    this.requests.length = 0;
    this.registered.clear();
    this.completedSnapshots.clear();
    this.snapshotTokens.clear();
    this.failNextScript = false;
    this.refuseBlocks = false;
    this.agentChannel = 'ssmmessages';
    this.wireEbs();
  }

  putObject(bucket: string, key: string, body: Uint8Array, versionId?: string): void {
    this.fake.putKernel(bucket, key, versionId, body);
  }

  setPhase(phase: string): void {
    this.phase = phase;
  }

  private wireEbs(): void {
    this.ebs.on(StartSnapshotCommand).callsFake((input) => {
      const existing = this.snapshotTokens.get(input.ClientToken);
      if (existing) {
        return { SnapshotId: existing, Status: this.completedSnapshots.has(existing) ? 'completed' : 'pending' };
      }
      const id = `snap-0e${(++this.counter).toString(16).padStart(15, '0')}`;
      this.fake.snapshots.set(id, { state: 'pending', tags: input.Tags ?? [] });
      this.snapshotTokens.set(input.ClientToken, id);
      return { SnapshotId: id, Status: 'pending', BlockSize: 512 * 1024, VolumeSize: input.VolumeSize };
    });
    this.ebs.on(PutSnapshotBlockCommand).callsFake((input) => {
      if (!this.fake.snapshots.has(input.SnapshotId)) throw awsError('ResourceNotFoundException');
      if (this.refuseBlocks) throw Object.assign(awsError('ValidationException', 'Invalid block'), { Reason: 'INVALID_BLOCK' });
      return { Checksum: input.Checksum, ChecksumAlgorithm: input.ChecksumAlgorithm };
    });
    this.ebs.on(CompleteSnapshotCommand).callsFake((input) => {
      if (!this.fake.snapshots.has(input.SnapshotId)) throw awsError('ResourceNotFoundException');
      this.completedSnapshots.add(input.SnapshotId);
      return { Status: 'pending' };
    });
  }

  /** What AWS does between two handler calls: every resource moves one state on. */
  progress(): void {
    const fake = this.fake;
    for (const [id, instance] of fake.instances) {
      if (instance.state === 'pending') {
        instance.state = 'running';
      } else if (instance.state === 'running' && !this.registered.has(id)) {
        this.registered.add(id);
        this.agentRegisters(id);
        fake.ssmOnline.add(id);
      } else if (instance.state === 'shutting-down') {
        instance.state = 'terminated';
        fake.ssmOnline.delete(id);
        for (const volume of fake.volumes.values()) {
          if (volume.attachedTo === id) {
            Object.assign(volume, { state: 'available', attachedTo: undefined, attachment: undefined });
          }
        }
      }
    }
    for (const volume of fake.volumes.values()) {
      if (volume.state === 'creating') {
        volume.state = 'available';
      } else if (volume.attachment === 'attaching') {
        volume.attachment = 'attached';
      }
    }
    for (const invocation of fake.invocations) {
      if (invocation.status === 'InProgress') {
        this.runScript(invocation);
      }
    }
    for (const [id, snapshot] of fake.snapshots) {
      // A helper build's snapshot completes on its own; an EBS direct one once CompleteSnapshot was called.
      if (snapshot.state === 'pending' && (snapshot.volumeId !== undefined || this.completedSnapshots.has(id))) {
        snapshot.state = 'completed';
      }
    }
    for (const image of fake.images.values()) {
      if (image.state === 'pending') {
        image.state = 'available';
      }
    }
  }

  private agentRegisters(instanceId: string): void {
    this.helperRequest(instanceId, 'ssm', 'UpdateInstanceInformation', { InstanceId: instanceId, AgentName: 'amazon-ssm-agent', PlatformType: 'Linux' });
    if (this.agentChannel === 'ssmmessages') {
      this.helperRequest(instanceId, 'ssmmessages', 'CreateControlChannel', { ChannelId: instanceId });
      this.helperRequest(instanceId, 'ssmmessages', 'OpenControlChannel', { ChannelId: instanceId });
    } else {
      this.helperRequest(instanceId, 'ec2messages', 'GetEndpoint', { Destination: instanceId });
      this.helperRequest(instanceId, 'ec2messages', 'GetMessages', { Destination: instanceId });
    }
    this.helperRequest(instanceId, 'ssm', 'ListInstanceAssociations', { InstanceId: instanceId });
  }

  /** AWS-RunShellScript on the helper: the script downloads the staged objects it names, then succeeds (or fails, if told to). */
  private runScript(invocation: { commandId: string; instanceId: string; status: string; stderr: string }): void {
    if (this.agentChannel === 'ec2messages') {
      this.helperRequest(invocation.instanceId, 'ec2messages', 'AcknowledgeMessage', { MessageId: invocation.commandId });
    }
    const sent = [...this.requests].reverse().find((r) => r.action === 'SendCommand' && (r.input.InstanceIds as string[]).includes(invocation.instanceId));
    const script = ((sent?.input.Parameters as { commands?: string[] } | undefined)?.commands ?? []).join('\n');
    for (const name of ['BLOCKS_SOURCE', 'MANIFEST_SOURCE']) {
      const [, bucket, key] = new RegExp(`^${name}='s3://([^/']+)/([^']+)'$`, 'm').exec(script) ?? [];
      if (bucket !== undefined) {
        // `aws s3 cp` asks HeadObject, then GetObject.
        this.helperRequest(invocation.instanceId, 's3', 'HeadObject', { Bucket: bucket, Key: key });
        this.helperRequest(invocation.instanceId, 's3', 'GetObject', { Bucket: bucket, Key: key });
      }
    }
    invocation.status = this.failNextScript ? 'Failed' : 'Success';
    invocation.stderr = this.failNextScript ? 'mirage-unikernel-ami helper: read-back verification failed for 1 of 9 blocks' : '';
    this.failNextScript = false;
    if (this.agentChannel === 'ec2messages') {
      this.helperRequest(invocation.instanceId, 'ec2messages', 'SendReply', { MessageId: invocation.commandId });
    }
  }

  private helperRequest(instanceId: string, service: ProofRecordedRequest['service'], action: string, input: { [key: string]: unknown }): void {
    this.requests.push({ service, action, input, resourceTags: this.tagsNamedIn({ InstanceId: instanceId }), principal: 'helper-instance', instanceId, phase: this.phase });
  }

  /** Tags of the resources an input names, by id, as they are now. */
  private tagsNamedIn(input: unknown): { [id: string]: RecordedTag[] } {
    const found: { [id: string]: RecordedTag[] } = {};
    const visit = (value: unknown, depth: number): void => {
      if (depth > 6 || value === null || value === undefined || value instanceof Uint8Array) {
        return;
      }
      if (typeof value === 'string') {
        const exists = this.fake.instances.has(value) || this.fake.volumes.has(value) || this.fake.snapshots.has(value) || this.fake.images.has(value);
        if (exists) {
          found[value] = Object.entries(this.fake.tagsOf(value)).map(([Key, Value]) => ({ Key, Value }));
        }
      } else if (Array.isArray(value)) {
        value.forEach((item) => visit(item, depth + 1));
      } else if (typeof value === 'object') {
        Object.values(value as object).forEach((item) => visit(item, depth + 1));
      }
    };
    visit(input, 0);
    return found;
  }
}

/** The provider framework's marker for a Create whose onEvent failed (cfn-response.ts). */
const CREATE_FAILED_MARKER = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';
/** isComplete calls before the driver gives up (the real waiter polls for up to 45 minutes). */
const MAX_POLLS = 40;

/** What the provider framework does with one CloudFormation request: onEvent once, then isComplete until done. */
async function provider(aws: RecordingAws, request: OnEventRequest): Promise<CfnOutcome> {
  const requestType = request.RequestType;
  aws.setPhase(`${requestType}/onEvent`);
  let response;
  try {
    response = await onEvent(request);
  } catch (err) {
    const physicalResourceId = requestType === 'Create' ? CREATE_FAILED_MARKER : request.PhysicalResourceId!;
    return { requestType, status: 'FAILED', physicalResourceId, failureReason: (err as Error).message };
  }
  for (let poll = 0; poll < MAX_POLLS; poll++) {
    aws.progress();
    aws.setPhase(`${requestType}/isComplete`);
    let done: IsCompleteResponse;
    try {
      done = await isComplete({ ...request, ...response });
    } catch (err) {
      return { requestType, status: 'FAILED', physicalResourceId: response.PhysicalResourceId, failureReason: (err as Error).message };
    }
    if (done.IsComplete) {
      return { requestType, status: 'SUCCESS', physicalResourceId: response.PhysicalResourceId };
    }
  }
  return { requestType, status: 'FAILED', physicalResourceId: response.PhysicalResourceId, failureReason: 'Operation timed out' };
}

/** Plays a lifecycle: the CloudFormation requests it makes, each through the provider framework. */
export async function runLifecycle(aws: RecordingAws, options: LifecycleOptions): Promise<CfnOutcome[]> {
  aws.agentChannel = options.agentChannel ?? 'ssmmessages';
  const base = {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:UnikernelStack-ProviderframeworkonEvent',
    ResponseURL: 'https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/presigned',
    StackId: options.stackId,
    LogicalResourceId: options.logicalId ?? 'Unikernel',
    ResourceType: 'Custom::MirageUnikernelAmi',
  };
  const p1: UnikernelAmiProperties = options.lifecycle === 'retain' ? { ...options.properties, RemovalPolicy: 'retain' } : options.properties;
  const create = (properties: UnikernelAmiProperties): OnEventRequest => ({ ...base, RequestId: 'create', RequestType: 'Create', ResourceProperties: properties });
  const update = (id: string, properties: UnikernelAmiProperties, old: UnikernelAmiProperties, requestId = 'update'): OnEventRequest =>
    ({ ...base, RequestId: requestId, RequestType: 'Update', PhysicalResourceId: id, ResourceProperties: properties, OldResourceProperties: old });
  const remove = (id: string, properties: UnikernelAmiProperties, requestId = 'delete'): OnEventRequest =>
    ({ ...base, RequestId: requestId, RequestType: 'Delete', PhysicalResourceId: id, ResourceProperties: properties });
  const outcomes: CfnOutcome[] = [];
  const send = async (request: OnEventRequest) => {
    // The framework answers the Delete of its CREATE_FAILED marker itself, without the handler.
    const outcome = request.RequestType === 'Delete' && !isBuildId(request.PhysicalResourceId) && request.PhysicalResourceId === CREATE_FAILED_MARKER
      ? { requestType: 'Delete' as const, status: 'SUCCESS' as const, physicalResourceId: CREATE_FAILED_MARKER }
      : await provider(aws, request);
    outcomes.push(outcome);
    return outcome;
  };

  if (options.lifecycle === 'failed-create') {
    // The build fails part-way: the helper's script fails, or the EBS direct APIs refuse a block.
    aws.failNextScript = true;
    aws.refuseBlocks = true;
  }
  const created = await send(create(p1));
  if (created.status === 'FAILED') {
    // CloudFormation's rollback deletes what the failed Create answered.
    await send(remove(created.physicalResourceId, p1, 'rollback-delete'));
    return outcomes;
  }
  const live = created.physicalResourceId;
  switch (options.lifecycle) {
    case 'rebuild': {
      const p2 = { ...p1, KernelArgs: `${p1.KernelArgs} console=hvc0`.trim() };
      const updated = await send(update(live, p2, p1));
      if (updated.status === 'SUCCESS' && updated.physicalResourceId !== live) {
        await send(remove(live, p1, 'cleanup-delete'));
      }
      break;
    }
    case 'tag-update':
      await send(update(live, { ...p1, Tags: { ...(p1.Tags ?? {}), owner: 'team-b' } }, { ...p1, Tags: { ...(p1.Tags ?? {}), retired: 'yes' } }));
      break;
    case 'delete':
    case 'retain':
      await send(remove(live, p1));
      break;
    default:
      break;
  }
  return outcomes;
}

/**
 * A stack switched from helper to EBS direct builds: a Create under the old properties, then the
 * Update to the new ones (a rebuild), then CloudFormation's cleanup Delete of the old helper build.
 * @returns the outcomes, and the index in `aws.requests` where the cleanup Delete's requests begin
 */
export async function runStrategySwitch(aws: RecordingAws, stackId: string, helper: UnikernelAmiProperties, direct: UnikernelAmiProperties):
  Promise<{ outcomes: CfnOutcome[]; cleanupFrom: number }> {
  const base = { ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:framework', StackId: stackId, LogicalResourceId: 'Switched', ResourceType: 'Custom::MirageUnikernelAmi' };
  const outcomes: CfnOutcome[] = [];
  const created = await provider(aws, { ...base, RequestId: 'create', RequestType: 'Create', ResourceProperties: helper });
  outcomes.push(created);
  const updated = await provider(aws, { ...base, RequestId: 'switch', RequestType: 'Update', PhysicalResourceId: created.physicalResourceId, ResourceProperties: direct, OldResourceProperties: helper });
  outcomes.push(updated);
  const cleanupFrom = aws.requests.length;
  outcomes.push(await provider(aws, { ...base, RequestId: 'cleanup', RequestType: 'Delete', PhysicalResourceId: created.physicalResourceId, ResourceProperties: helper }));
  return { outcomes, cleanupFrom };
}
