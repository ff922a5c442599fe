/**
 * The helper strategy's steps one at a time (helper-instance.ts), on the fake account with
 * simulated time: which RunInstances errors are waited for, and the rounds of isComplete from a
 * launched helper to a completed snapshot, each state of the helper, of its SSM agent and script,
 * and of the snapshot, with what the round waits for, what CloudFormation is told and which stage
 * lines `watch` reads. onEvent sets a build up; a round is then advanceHelperBuild called directly.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { OnEventRequest } from '../../../lib/unikernel-ami/handler/events';
import { clients } from '../../../lib/unikernel-ami/handler/clients';
import {
  advanceHelperBuild,
  HelperContext,
  HelperRound,
  isInstanceProfileNotYetVisible,
  isLaunchQuotaExceeded,
  isNoCapacity,
  onDemandQuotaName,
  RUN_INSTANCES_RETRY,
} from '../../../lib/unikernel-ami/handler/helper-instance';
import { onEvent } from '../../../lib/unikernel-ami/handler/index';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { readProgress, writeProgress } from '../../../lib/unikernel-ami/handler/progress';
import { formatBuildRecord } from '../../../lib/unikernel-ami/handler/build-record';
import { BUILD_RECORD_TAG } from '../../../lib/unikernel-ami/types';
import { buildTags, parseProperties, propertiesHash } from '../../../lib/unikernel-ami/handler/properties';
import {
  createEvent,
  HELPER_IMAGE_ID,
  HELPER_INSTANCE_PROFILE_ARN,
  HELPER_SUBNET_ID,
  helperInstanceProperties,
  KERNEL_BUCKET,
  KERNEL_KEY,
  KERNEL_VERSION,
  STAGING_BUCKET,
} from '../../fixtures/custom-resource';
import { awsError, useFakeAws } from '../../fixtures/fake-aws';

const KERNEL = readFileSync(join(__dirname, '../../fixtures/kernels/pv-x86_64.elf'));
const { aws, logLines } = useFakeAws();
const OTHER_SUBNET = 'subnet-0def5678';

beforeEach(() => {
  aws.putObject(KERNEL_BUCKET, KERNEL_KEY, KERNEL, KERNEL_VERSION);
  aws.world.subnets.set(OTHER_SUBNET, 'us-east-1c');
});

const stageLines = () => logLines.map((line) => JSON.parse(line)).filter((line) => line.step === 'stage');

describe('which RunInstances errors the launch waits for', () => {
  const retried = (err: Error) => RUN_INSTANCES_RETRY.isRetryable!(err);

  test('an instance profile EC2 does not see yet (InvalidParameterValue naming it) and throttling are retried', () => {
    expect(retried(awsError('InvalidParameterValue', 'Value (arn:aws:iam::123456789012:instance-profile/p) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN'))).toBe(true);
    expect(retried(awsError('RequestLimitExceeded', 'Request limit exceeded.', { status: 503 }))).toBe(true);
  });

  test('no capacity, another InvalidParameterValue, and a refusal that names the instance profile under another code go through at once', () => {
    expect(retried(awsError('InsufficientInstanceCapacity', 'We currently do not have sufficient t3.small capacity.', { status: 500 }))).toBe(false);
    expect(retried(awsError('InvalidParameterValue', 'Value (t9.huge) for parameter instanceType is invalid.'))).toBe(false);
    expect(retried(awsError('UnauthorizedOperation', 'You are not authorized to pass the IAM instance profile arn:aws:iam::123456789012:instance-profile/p.'))).toBe(false);
  });

  test('errors without a name, or no error object at all, are none of these', () => {
    for (const err of [undefined, {}]) {
      expect(isInstanceProfileNotYetVisible(err)).toBe(false);
      expect(isNoCapacity(err)).toBe(false);
      expect(isLaunchQuotaExceeded(err)).toBe(false);
    }
    expect(isNoCapacity(awsError('InsufficientInstanceCapacity', 'no capacity'))).toBe(true);
    expect(isLaunchQuotaExceeded(awsError('InstanceLimitExceeded', 'limit'))).toBe(true);
  });
});

describe('the helper\'s launch in onEvent', () => {
  const twoSubnets = () => {
    const base = helperInstanceProperties();
    return helperInstanceProperties({ Helper: { ...base.Helper!, SubnetIds: [HELPER_SUBNET_ID, OTHER_SUBNET] } });
  };

  test('a refusal other than capacity or quota fails at once, naming the call, the type and the subnet; no other subnet is tried', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.') });
    await expect(aws.drive(onEvent(createEvent(twoSubnets())))).rejects.toThrow(
      `ec2:RunInstances (t3.small in ${HELPER_SUBNET_ID}) failed: You are not authorized to perform this operation.`);
    expect(aws.handlerRequests('RunInstances')).toHaveLength(1);
  });

  test('no capacity anywhere: CloudFormation is told what to change', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', maxHits: 2, error: () => awsError('InsufficientInstanceCapacity', 'no t3.small capacity', { status: 500 }) });
    await expect(aws.drive(onEvent(createEvent(twoSubnets())))).rejects.toThrow(
      `(${HELPER_SUBNET_ID}, ${OTHER_SUBNET}; InsufficientInstanceCapacity). Redeploy later, or choose another type (BuildStrategy.helperInstance({ instanceType })) or subnets in more zones (vpcSubnets).`);
  });

  test('a used-up quota: CloudFormation is told EC2\'s own error code and message', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: () => awsError('VcpuLimitExceeded', 'You have requested more vCPU capacity than your current vCPU limit of 1 allows.') });
    await expect(aws.drive(onEvent(createEvent()))).rejects.toThrow(
      'EC2 refused to launch the helper (t3.small): the account\'s On-Demand instance quota is used up (VcpuLimitExceeded: ec2:RunInstances (t3.small in '
      + `${HELPER_SUBNET_ID}) failed: You have requested more vCPU capacity than your current vCPU limit of 1 allows.). Raise`);
  });

  test('onDemandQuotaName: a family whose first letter is a standard one but which has a quota of its own, or whose name holds one', () => {
    expect(onDemandQuotaName('trn1.2xlarge')).toBe('the Running On-Demand quota of the trn family');
    expect(onDemandQuotaName('hpc7g.4xlarge')).toBe('the Running On-Demand quota of the hpc family');
    expect(onDemandQuotaName('mac2.metal')).toBe('the Running On-Demand quota of the mac family');
    expect(onDemandQuotaName('vt1.3xlarge')).toBe('the Running On-Demand quota of the vt family');
  });

  test('the helper-launched stage line carries the instance id, for watch', async () => {
    const response = await aws.drive(onEvent(createEvent()));
    expect(stageLines().filter((line) => line.stage === 'helper-launched')).toEqual([
      expect.objectContaining({ instanceId: response.BuildState!.InstanceId }),
    ]);
  });
});

/** A helper build after its onEvent, and its isComplete rounds called one by one. */
async function launchedBuild(properties = helperInstanceProperties()) {
  const request = createEvent(properties);
  const response = await aws.drive(onEvent(request));
  const buildId = response.PhysicalResourceId;
  const startedAt = response.BuildState!.StartedAt!;
  const ctx = contextOf(request, buildId);
  const instanceId = response.BuildState!.InstanceId!;
  return {
    buildId,
    ctx,
    instanceId,
    startedAt,
    round: (started = startedAt): Promise<HelperRound> => aws.drive(advanceHelperBuild(ctx, instanceId, started)),
    /** A round of an isComplete whose event has no instance id. */
    roundWithoutId: (): Promise<HelperRound> => aws.drive(advanceHelperBuild(ctx, undefined, startedAt)),
    progress: () => aws.drive(readProgress(clients.s3, STAGING_BUCKET, buildId)),
  };
}

/** The context isComplete builds for the request (index.ts). */
function contextOf(request: OnEventRequest, buildId: string): HelperContext {
  const spec = parseProperties(request.ResourceProperties);
  const identity = { buildId, stackId: request.StackId, logicalId: request.LogicalResourceId, propertiesHash: propertiesHash(request.ResourceProperties) };
  return { ...clients, buildId, spec, tags: buildTags(identity, spec), log: new StepLog(buildId) };
}

/** Rounds every `stepMs` until one says done or `until` holds for its answer; the answers, in order. */
async function roundsUntil(round: () => Promise<HelperRound>, until: (r: HelperRound) => boolean, stepMs = 5_000, maxRounds = 200): Promise<HelperRound[]> {
  const answers: HelperRound[] = [];
  for (let i = 0; i < maxRounds; i++) {
    const answer = await round();
    answers.push(answer);
    if (answer.done || until(answer)) {
      return answers;
    }
    await aws.advance(stepMs);
  }
  throw new Error(`no end after ${maxRounds} rounds`);
}

const waitingFor = (answers: readonly HelperRound[]) => [...new Set(answers.map((a) => (a.done ? 'done' : a.waitingFor)))];

describe('isComplete rounds of a helper build', () => {
  test('from launch to a completed snapshot, each round says what it waits for, and the stages watch reads are logged with their ids', async () => {
    const build = await launchedBuild();
    const id = build.instanceId;
    // Each round is followed at once by another (EC2's and SSM's lag after a create), then time passes.
    let last = '';
    const answers = await roundsUntil(async () => {
      const answer = await build.round();
      const said = answer.done ? 'done' : answer.waitingFor;
      if (said === last) {
        return answer;
      }
      last = said;
      const again = await build.round();
      last = again.done ? 'done' : again.waitingFor;
      return again.done ? again : { done: false, waitingFor: `${said} | ${again.waitingFor}` };
    }, () => false);
    const progress = await build.progress();
    const command = progress.commandId!;
    const snapshot = progress.snapshotIds![0];
    expect(answers[answers.length - 1]).toEqual({ done: true, snapshotId: snapshot, instanceId: id });
    // The script wrote, and the snapshot holds, the launch's data volume (not the helper's root volume).
    const dataVolume = aws.world.instances.get(id)!.blockDevices.find((device) => device.deviceName === '/dev/sdf')!.volumeId;
    expect(aws.world.snapshots.get(snapshot)!.volumeId).toBe(dataVolume);
    expect(JSON.stringify(aws.handlerRequests('SendCommand')[0].input)).toContain(dataVolume);
    expect(aws.world.snapshots.get(snapshot)!.description).toBe(`hello unikernel disk (mirage-unikernel-ami build ${build.buildId})`);
    const said = waitingFor(answers).flatMap((s) => s.split(' | '));
    expect([...new Set(said)].filter((s) => !/^snapshot \S+ to complete \(/.test(s))).toEqual([
      `EC2 to show the new helper instance ${id}`,
      `the helper instance ${id} to start`,
      `the SSM agent of the helper instance ${id} to come online`,
      `the helper script (SSM command ${command}) on ${id}`,
      `SSM to show the command ${command}`,
      `the helper script (SSM command ${command}, InProgress) on ${id}`,
      `snapshot ${snapshot} to complete`,
      `EC2 to show the new snapshot ${snapshot}`,
      'done',
    ]);
    const stages = stageLines().map(({ stage, instanceId, commandId, snapshotId, progressPercent }) => ({ stage, instanceId, commandId, snapshotId, progressPercent }));
    expect(stages).toEqual(expect.arrayContaining([
      { stage: 'agent-online', instanceId: id, commandId: command },
      { stage: 'verified', instanceId: id, commandId: command },
      { stage: 'snapshot', snapshotId: snapshot, progressPercent: 100 },
    ]));
    // While pending, the snapshot's own progress (EC2's Progress, "5%").
    expect(stages.find((s) => s.stage === 'snapshot')!.progressPercent).toBe(5);
  });

  test('a helper stuck pending fails the build once it has been pending for more than ten minutes since its launch (not since onEvent began)', async () => {
    aws.injectFault({ kind: 'never-finishes', service: 'ec2', action: 'RunInstances' });
    const build = await launchedBuild();
    const launchedAt = aws.world.instances.get(build.instanceId)!.launchedAt;
    // GIVEN a build whose onEvent began nine minutes before the launch (a launch left to isComplete)
    const startedEarlier = launchedAt - 9 * 60_000;
    await aws.advance(launchedAt + 2 * 60_000 - aws.clock.now());
    await expect(build.round(startedEarlier)).resolves.toEqual({ done: false, waitingFor: `the helper instance ${build.instanceId} to start` });
    await aws.advance(launchedAt + 10 * 60_000 - aws.clock.now());
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: `the helper instance ${build.instanceId} to start` });
    await aws.advance(60_000);
    await expect(build.round()).rejects.toThrow(`The helper instance ${build.instanceId} has been pending for 11 minutes; EC2 did not start it. Redeploy to try again.`);
  });

  test('an SSM agent that never comes online fails the build after fifteen minutes of running, saying which routes the subnet needs', async () => {
    aws.configure({ ssmReachable: false });
    const build = await launchedBuild();
    const launchedAt = aws.world.instances.get(build.instanceId)!.launchedAt;
    await aws.advance(launchedAt + 15 * 60_000 - aws.clock.now());
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: `the SSM agent of the helper instance ${build.instanceId} to come online` });
    await aws.advance(60_000);
    await expect(build.round()).rejects.toThrow(`The helper instance ${build.instanceId} has run for 16 minutes without its SSM agent coming online. `
      + 'Its subnet needs a route to the SSM and S3 endpoints (a NAT gateway, or VPC endpoints for ssm, ssmmessages, ec2messages and S3).');
  });

  test('a helper terminated before its volume was written fails the build with its state and EC2\'s reason', async () => {
    const build = await launchedBuild();
    await aws.advance(30_000);
    aws.world.beginShutdown(aws.world.instances.get(build.instanceId)!, aws.clock.now(), { Code: 'Client.UserInitiatedShutdown', Message: 'Client.UserInitiatedShutdown: User initiated shutdown' });
    await expect(build.round()).rejects.toThrow(
      `The helper instance ${build.instanceId} is shutting-down before its volume was written (Client.UserInitiatedShutdown: User initiated shutdown). Redeploy to start a new build.`);
  });

  test('a helper stopped without a reason given: the failure names its state only', async () => {
    const build = await launchedBuild();
    await aws.advance(30_000);
    const instance = aws.world.instances.get(build.instanceId)!;
    instance.state = 'stopped';
    instance.stateReason = undefined;
    aws.world.recordStates();
    await expect(build.round()).rejects.toThrow(new RegExp(`^The helper instance ${build.instanceId} is stopped before its volume was written\\. Redeploy to start a new build\\.$`));
  });

  test('a helper EC2 no longer knows is waited for within five minutes of the build\'s start, then fails the build', async () => {
    const build = await launchedBuild();
    aws.world.instances.delete(build.instanceId);
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: `EC2 to show the new helper instance ${build.instanceId}` });
    await aws.advance(5 * 60_000);
    await expect(build.round()).rejects.toThrow(
      `The helper instance ${build.instanceId} is not found after 5 minutes (terminated outside CloudFormation?). Redeploy to start a new build.`);
  });

  test('the round after SendCommand whose progress write failed finds the command by its comment: the script is sent once', async () => {
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), (r) => !r.done && r.waitingFor.startsWith('the SSM agent'));
    await aws.advance(60_000);
    // GIVEN the round that sends the script cannot record its command
    aws.injectFault({ kind: 'refuse', service: 's3', action: 'PutObject', error: () => awsError('AccessDenied', 'Access Denied', { status: 403 }) });
    await expect(build.round()).rejects.toThrow(/Access Denied/);
    expect(aws.handlerRequests('SendCommand')).toHaveLength(1);
    await aws.advance(5_000);
    // WHEN the next round comes
    const next = await build.round();
    // THEN it waits for the command sent before, and records it
    const [sent] = aws.world.invocations;
    expect(next).toEqual({ done: false, waitingFor: `the helper script (SSM command ${sent.commandId}) on ${build.instanceId}` });
    expect(aws.handlerRequests('SendCommand')).toHaveLength(1);
    expect((await build.progress()).commandId).toBe(sent.commandId);
  });

  test('a command someone else ran on the helper (another comment) is not taken for the script: the script is sent', async () => {
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), (r) => !r.done && r.waitingFor.startsWith('the SSM agent'));
    await aws.advance(60_000);
    aws.world.invocations.push({
      commandId: '0f1e2d3c-4b5a-4697-8877-0000000000aa', instanceId: build.instanceId, documentName: 'AWS-RunShellScript', comment: 'operator: df -h',
      commands: ['df -h'], executionTimeoutSeconds: 600, requestedAt: aws.clock.now() - 10_000, visibleAt: aws.clock.now() - 9_000,
      status: 'Success', responseCode: 0, stdout: '', stderr: '',
    });
    const round = await build.round();
    expect(aws.handlerRequests('SendCommand')).toHaveLength(1);
    const script = aws.world.invocations.find((invocation) => invocation.comment === build.buildId)!;
    expect(round).toEqual({ done: false, waitingFor: `the helper script (SSM command ${script.commandId}) on ${build.instanceId}` });
    expect((await build.progress()).commandId).toBe(script.commandId);
  });

  test('SendCommand runs the shell document on the helper alone, with the build id as comment and the script\'s own time limit (1800 s)', async () => {
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), () => aws.handlerRequests('SendCommand').length > 0);
    const [request] = aws.handlerRequests('SendCommand');
    expect(request.input).toMatchObject({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [build.instanceId],
      Comment: build.buildId,
      Parameters: { executionTimeout: ['1800'], commands: expect.arrayContaining([expect.any(String)]) },
    });
  });

  test('a snapshot whose id cannot be recorded is deleted again by its id, and the round fails with the write\'s error', async () => {
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), (r) => !r.done && r.waitingFor.includes('InProgress'));
    await aws.advance(60_000);
    // (EC2 knows the new snapshot by its id at once here, so that the delete can succeed)
    aws.configure({ lagByIdMs: 0 });
    aws.injectFault({ kind: 'refuse', service: 's3', action: 'PutObject', error: () => awsError('AccessDenied', 'Access Denied', { status: 403 }) });
    await expect(build.round()).rejects.toThrow(/Access Denied/);
    expect(aws.handlerRequests('CreateSnapshot')).toHaveLength(1);
    expect(aws.handlerRequests('DeleteSnapshot').map((r) => r.input.SnapshotId)).toEqual([expect.stringMatching(/^snap-/)]);
    expect(aws.world.snapshots.size).toBe(0);
  });

  test('GetCommandInvocation refused for another reason than a command SSM does not show yet: the round fails at once, naming the call', async () => {
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), (r) => !r.done && r.waitingFor.startsWith('the helper script'));
    aws.injectFault({ kind: 'refuse', service: 'ssm', action: 'GetCommandInvocation', error: () => awsError('AccessDeniedException', 'User is not authorized to perform: ssm:GetCommandInvocation') });
    await expect(build.round()).rejects.toThrow('ssm:GetCommandInvocation failed: User is not authorized to perform: ssm:GetCommandInvocation');
  });
});

describe('a helper gone while the progress object names no snapshot (another delivery of the event took the build on)', () => {
  /**
   * A build whose first CreateSnapshot answer was lost (two snapshots: the older one unrecorded),
   * run until its snapshot completed; then its progress object loses the snapshots and the helper
   * is terminated, as a repeated onEvent and the other delivery's rounds leave them.
   */
  async function goneWithTwoSnapshots() {
    aws.injectFault({ kind: 'lost-response', service: 'ec2', action: 'CreateSnapshot' });
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), () => false, 10_000);
    const [older, newer] = [...aws.world.snapshots.values()].sort((a, b) => a.createdAt - b.createdAt);
    await aws.advance(120_000);
    const { snapshotIds, snapshotCreatedAt, ...rest } = await build.progress();
    expect(snapshotIds).toEqual([newer.id]);
    await aws.drive(writeProgress(clients.s3, STAGING_BUCKET, build.buildId, rest));
    aws.world.beginShutdown(aws.world.instances.get(build.instanceId)!, aws.clock.now(), { Code: 'Client.UserInitiatedShutdown', Message: 'Client.UserInitiatedShutdown: User initiated shutdown' });
    return { build, older, newer };
  }

  test.each(['oldest-first', 'newest-first'] as const)('the oldest snapshot of the build carries it on, whatever the order EC2 lists them in (%s)', async (order) => {
    const { build, older } = await goneWithTwoSnapshots();
    aws.configure({ filteredReadOrder: order });
    await expect(build.round()).resolves.toEqual({ done: true, snapshotId: older.id, instanceId: build.instanceId });
  });

  test('the snapshot listed by its tag but then unknown by its id is waited for from its own start, not from the build\'s', async () => {
    const { build, older } = await goneWithTwoSnapshots();
    expect(aws.clock.now() - build.startedAt).toBeGreaterThan(5 * 60_000);
    expect(aws.clock.now() - older.createdAt).toBeLessThan(5 * 60_000);
    // GIVEN the snapshot gone from the reads by id (deleted, or a replica behind) right after the listing
    aws.onHandlerRequest((request) => {
      if (request.action === 'DescribeSnapshots' && (request.input.SnapshotIds as string[] | undefined)?.includes(older.id)) {
        aws.world.snapshots.delete(older.id);
      }
    });
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: `EC2 to show the new snapshot ${older.id}` });
  });

  test('a snapshot in the error state is passed over', async () => {
    const { build, older, newer } = await goneWithTwoSnapshots();
    older.state = 'error';
    await expect(build.round()).resolves.toEqual({ done: true, snapshotId: newer.id, instanceId: build.instanceId });
  });

  test('a snapshot recorded complete goes before an older one', async () => {
    const { build, newer } = await goneWithTwoSnapshots();
    newer.tags.push({ Key: BUILD_RECORD_TAG, Value: formatBuildRecord({ version: 1, outcome: 'complete', startedAt: build.startedAt, stages: [] }) });
    await expect(build.round()).resolves.toEqual({ done: true, snapshotId: newer.id, instanceId: build.instanceId });
  });
});

describe('a round that does not know the helper\'s id (RunInstances\' answer lost in onEvent)', () => {
  const forgetInstance = async (build: Awaited<ReturnType<typeof launchedBuild>>) => {
    const { instanceId, ...rest } = await build.progress();
    await aws.drive(writeProgress(clients.s3, STAGING_BUCKET, build.buildId, rest));
  };
  const byClientToken = () => aws.handlerRequests('DescribeInstances').filter((r) => JSON.stringify(r.input).includes('client-token'));

  test('the progress object\'s id is used: no launch', async () => {
    const build = await launchedBuild();
    await aws.advance(30_000);
    await expect(build.roundWithoutId()).resolves.toEqual({ done: false, waitingFor: `the SSM agent of the helper instance ${build.instanceId} to come online` });
    expect(aws.handlerRequests('RunInstances')).toHaveLength(1);
  });

  test('one subnet: the launch is repeated with the build id as client token, which returns the same helper, and its id is recorded', async () => {
    const build = await launchedBuild();
    await forgetInstance(build);
    await aws.advance(30_000);
    await expect(build.roundWithoutId()).resolves.toEqual({ done: false, waitingFor: `the SSM agent of the helper instance ${build.instanceId} to come online` });
    expect(aws.handlerRequests('RunInstances').map((r) => r.input.ClientToken)).toEqual([build.buildId, build.buildId]);
    expect(byClientToken()).toEqual([]);
    expect(aws.world.instances.size).toBe(1);
    expect((await build.progress()).instanceId).toBe(build.instanceId);
  });

  test.each([
    ['pending', 10_000],
    ['running', 30_000],
  ])('two subnets, the helper launched in the second and %s: found by its client token, no second launch', async (state, afterMs) => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: () => awsError('InsufficientInstanceCapacity', 'no t3.small capacity', { status: 500 }) });
    const base = helperInstanceProperties();
    const build = await launchedBuild(helperInstanceProperties({ Helper: { ...base.Helper!, SubnetIds: [HELPER_SUBNET_ID, OTHER_SUBNET] } }));
    await forgetInstance(build);
    await aws.advance(afterMs);
    expect(aws.world.instances.get(build.instanceId)!.state).toBe(state);
    await build.roundWithoutId();
    expect(byClientToken()).toHaveLength(1);
    expect([...aws.world.instances.keys()]).toEqual([build.instanceId]);
    expect((await build.progress()).instanceId).toBe(build.instanceId);
  });
});

describe('more isComplete rounds', () => {
  test('a running helper whose data volume EC2 does not list yet: the round waits for it and sends nothing', async () => {
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), (r) => !r.done && r.waitingFor.startsWith('the SSM agent'));
    await aws.advance(60_000);
    const instance = aws.world.instances.get(build.instanceId)!;
    const devices = instance.blockDevices;
    instance.blockDevices = devices.filter((device) => device.deviceName !== '/dev/sdf');
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: `EC2 to list the data volume of the helper instance ${build.instanceId}` });
    expect(aws.handlerRequests('SendCommand')).toEqual([]);
    instance.blockDevices = devices;
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: expect.stringMatching(/^the helper script \(SSM command /) });
  });

  test('with another helper in the account (older, and terminated), a round reads its own helper by its id', async () => {
    const other = await aws.drive(onEvent(createEvent(helperInstanceProperties({ Name: 'other' }), 'other-request')));
    aws.world.beginShutdown(aws.world.instances.get(other.BuildState!.InstanceId!)!, aws.clock.now(), { Code: 'Client.UserInitiatedShutdown', Message: 'Client.UserInitiatedShutdown: User initiated shutdown' });
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), () => aws.handlerRequests('SendCommand').length > 0);
    expect(aws.handlerRequests('SendCommand')[0].input.InstanceIds).toEqual([build.instanceId]);
  });

  test('DescribeInstances refused: CloudFormation is told which call failed', async () => {
    const build = await launchedBuild();
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeInstances', error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.') });
    await expect(build.round()).rejects.toThrow(/^ec2:DescribeInstances failed: You are not authorized/);
  });

  test('a snapshot EC2 does not show is waited for five minutes from its creation (not from the build\'s start), then the build fails', async () => {
    const build = await launchedBuild();
    await roundsUntil(() => build.round(), (r) => !r.done && r.waitingFor.startsWith('snapshot '));
    const { snapshotIds, snapshotCreatedAt } = await build.progress();
    expect(snapshotCreatedAt! - build.startedAt).toBeGreaterThan(60_000);
    // GIVEN the snapshot deleted outside the build
    aws.world.snapshots.delete(snapshotIds![0]);
    await aws.advance(snapshotCreatedAt! + 5 * 60_000 - 30_000 - aws.clock.now());
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: `EC2 to show the new snapshot ${snapshotIds![0]}` });
    await aws.advance(60_000);
    await expect(build.round()).rejects.toThrow(`Snapshot ${snapshotIds![0]} of build ${build.buildId} is not found`);
  });

  test('the SSM agent of another helper in the account is online: this helper\'s own agent is waited for', async () => {
    const other = await aws.drive(onEvent(createEvent(helperInstanceProperties({ Name: 'other' }), 'other-request')));
    await aws.advance(90_000);
    expect(aws.world.instances.get(other.BuildState!.InstanceId!)!.agentOnlineAt).toBeDefined();
    const build = await launchedBuild();
    await aws.advance(30_000);
    await expect(build.round()).resolves.toEqual({ done: false, waitingFor: `the SSM agent of the helper instance ${build.instanceId} to come online` });
  });
});

describe('the lost-id round with two subnets, before EC2\'s filtered reads list the new helper', () => {
  async function lostIdBuild() {
    const base = helperInstanceProperties();
    const build = await launchedBuild(helperInstanceProperties({ Helper: { ...base.Helper!, SubnetIds: [HELPER_SUBNET_ID, OTHER_SUBNET] } }));
    const { instanceId, ...rest } = await build.progress();
    await aws.drive(writeProgress(clients.s3, STAGING_BUCKET, build.buildId, rest));
    return { build, instanceId };
  }

  test('nothing found by client token: the launch is repeated in the first subnet with its own token, which returns the same helper', async () => {
    const { build, instanceId } = await lostIdBuild();
    await build.roundWithoutId();
    expect(aws.handlerRequests('RunInstances').map((r) => r.input.ClientToken)).toEqual([build.buildId, build.buildId]);
    expect([...aws.world.instances.keys()]).toEqual([instanceId]);
  });

  test('DescribeInstances by client token refused: CloudFormation is told which call failed', async () => {
    const { build } = await lostIdBuild();
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeInstances', error: () => awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.') });
    await expect(build.roundWithoutId()).rejects.toThrow(/^ec2:DescribeInstances failed: You are not authorized/);
  });
});

describe('the RunInstances request', () => {
  test('the helper runs the given AMI and type in the given subnet with the given instance profile, requires IMDSv2, terminates when it shuts itself down, and tags its instance, volumes and network interface with the build\'s tags', async () => {
    const build = await launchedBuild();
    const [request] = aws.handlerRequests('RunInstances');
    const tags = build.ctx.tags;
    expect(request.input).toMatchObject({
      ImageId: HELPER_IMAGE_ID,
      InstanceType: 't3.small',
      SubnetId: HELPER_SUBNET_ID,
      IamInstanceProfile: { Arn: HELPER_INSTANCE_PROFILE_ARN },
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
      InstanceInitiatedShutdownBehavior: 'terminate',
      SecurityGroupIds: ['sg-0abc1234'],
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
        { ResourceType: 'network-interface', Tags: tags },
      ],
    });
  });

  test('an unencrypted build leaves the data volume\'s encryption to the account\'s default; the root volume is mapped as the AL2023 AMI maps it', async () => {
    await launchedBuild();
    const mappings = (aws.handlerRequests('RunInstances')[0].input as { BlockDeviceMappings: unknown[] }).BlockDeviceMappings;
    expect(mappings).toEqual([
      { DeviceName: '/dev/sdf', Ebs: { VolumeSize: 1, VolumeType: 'gp3', DeleteOnTermination: true } },
      { DeviceName: '/dev/xvda', Ebs: { VolumeSize: 8, VolumeType: 'gp3', DeleteOnTermination: true } },
    ]);
  });
});

describe('a step\'s call refused: CloudFormation is told which call failed', () => {
  test.each([
    ['ssm', 'DescribeInstanceInformation'],
    ['ssm', 'ListCommandInvocations'],
    ['ssm', 'SendCommand'],
    ['ec2', 'CreateSnapshot'],
  ] as const)('%s:%s', async (service, action) => {
    aws.injectFault({ kind: 'refuse', service, action, maxHits: Infinity, error: () => awsError('ValidationException', 'The request was refused.') });
    const build = await launchedBuild();
    let failure: unknown;
    await roundsUntil(() => build.round().catch((err) => {
      failure = err;
      return { done: false, waitingFor: 'failed' };
    }), () => failure !== undefined);
    expect((failure as Error).message).toBe(`${service}:${action} failed: The request was refused.`);
  });
});
