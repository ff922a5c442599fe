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
import { readProgress } from '../../../lib/unikernel-ami/handler/progress';
import { buildTags, parseProperties, propertiesHash } from '../../../lib/unikernel-ami/handler/properties';
import {
  createEvent,
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
    round: (known: string | undefined = instanceId, started = startedAt): Promise<HelperRound> => aws.drive(advanceHelperBuild(ctx, known, started)),
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
});
