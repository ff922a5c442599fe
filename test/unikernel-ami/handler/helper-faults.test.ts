/**
 * How a helper build reacts to SSM command statuses other than success and to RunInstances refusals
 * for capacity or quota, on the fake account (simulated time).
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { IsCompleteRequest, IsCompleteResponse } from '../../../lib/unikernel-ami/handler/events';
import { launchClientToken } from '../../../lib/unikernel-ami/handler/helper-instance';
import { isComplete, onEvent } from '../../../lib/unikernel-ami/handler/index';
import { BUILD_ID_TAG } from '../../../lib/unikernel-ami/types';
import {
  createEvent,
  HELPER_SUBNET_ID,
  helperInstanceProperties,
  isCompleteEvent,
  KERNEL_BUCKET,
  KERNEL_KEY,
  KERNEL_VERSION,
  REGION,
  STAGING_BUCKET,
} from '../../fixtures/custom-resource';
import { awsError, FakeInvocation, useFakeAws } from '../../fixtures/fake-aws';
import { PROVIDER } from '../../fixtures/lifecycle';

process.env.AWS_REGION = REGION;
const KERNEL = readFileSync(join(__dirname, '../../fixtures/kernels/pv-x86_64.elf'));
const { aws } = useFakeAws();
const OTHER_SUBNET = 'subnet-0def5678';
const THIRD_SUBNET = 'subnet-0fed9876';

beforeEach(() => {
  aws.putObject(KERNEL_BUCKET, KERNEL_KEY, KERNEL, KERNEL_VERSION);
  aws.world.subnets.set(OTHER_SUBNET, 'us-east-1c');
  aws.world.subnets.set(THIRD_SUBNET, 'us-east-1d');
});

/** Properties whose helper may run in three subnets of three zones. */
const properties = () => {
  const base = helperInstanceProperties();
  return helperInstanceProperties({ Helper: { ...base.Helper!, SubnetIds: [HELPER_SUBNET_ID, OTHER_SUBNET, THIRD_SUBNET] } });
};

/** isComplete every query interval until `stop` says so (or the build completes); returns the last answer. */
async function pollUntil(event: IsCompleteRequest, stop: () => boolean, maxPolls = 200): Promise<IsCompleteResponse> {
  for (let poll = 0; poll < maxPolls; poll++) {
    const done = await aws.drive(isComplete(event));
    if (done.IsComplete || stop()) {
      return done;
    }
    await aws.advance(PROVIDER.queryIntervalMs);
  }
  throw new Error(`no stop after ${maxPolls} polls`);
}

/**
 * Runs the build until the helper script has been sent, then gives its invocation `status` (and
 * `statusDetails`) and lets SSM show it; returns the invocation and the isComplete event.
 */
async function scriptEndsAs(status: FakeInvocation['status'], statusDetails?: string): Promise<{ invocation: FakeInvocation; event: IsCompleteRequest }> {
  const request = createEvent(properties());
  const event = isCompleteEvent(request, await aws.drive(onEvent(request)));
  await pollUntil(event, () => aws.world.invocations.length > 0);
  const invocation = aws.world.invocations[0];
  invocation.status = status;
  invocation.statusDetails = statusDetails;
  await aws.advance(60_000);
  return { invocation, event };
}

function liveInstances() {
  return [...aws.world.instances.values()].filter((i) => i.state !== 'terminated' && i.state !== 'shutting-down');
}

describe('SSM command statuses of the helper script', () => {
  test('Delayed is not a failure: the build waits and then completes', async () => {
    const { invocation, event } = await scriptEndsAs('Delayed');
    for (let poll = 0; poll < 10; poll++) {
      await expect(aws.drive(isComplete(event))).resolves.toEqual({ IsComplete: false });
      await aws.advance(PROVIDER.queryIntervalMs);
    }
    // SSM delivers it after all
    invocation.status = 'Pending';
    const done = await pollUntil(event, () => false);
    expect(done.Data?.ImageId).toMatch(/^ami-/);
  });

  test('Cancelled fails the build saying the command was cancelled, and the helper is removed', async () => {
    const { event } = await scriptEndsAs('Cancelled');
    const failure = aws.drive(isComplete(event));
    await expect(failure).rejects.toThrow(/helper script \(SSM command [0-9a-f-]+\) on i-[0-9a-f]+ was cancelled before it finished \(Cancelled\): ssm:CancelCommand/);
    expect(liveInstances()).toEqual([]);
  });

  test.each([
    ['TimedOut', 'Delivery Timed Out'],
    ['Failed', 'Undeliverable'],
  ] as const)('%s with StatusDetails %s: the agent could not be reached, and what to check', async (status, details) => {
    const { event } = await scriptEndsAs(status, details);
    const failure = aws.drive(isComplete(event));
    await expect(failure).rejects.toThrow(new RegExp(`could not deliver the helper script \\(command [0-9a-f-]+, ${status}, ${details}\\) .*SSM agent could not be reached`));
    await expect(failure).rejects.toThrow(/ssmmessages and ec2messages endpoints .*NAT gateway.*VPC endpoints.*outbound HTTPS/);
    expect(liveInstances()).toEqual([]);
  });

  test('a script that fails on the instance still reports its own reason (StatusDetails Failed)', async () => {
    const { invocation, event } = await scriptEndsAs('Failed');
    invocation.responseCode = 1;
    invocation.stderr = 'mirage-unikernel-ami helper: the write failed';
    await expect(aws.drive(isComplete(event))).rejects.toThrow(/could not write the disk image \(SSM command [0-9a-f-]+ Failed, exit code 1\): mirage-unikernel-ami helper: the write failed/);
  });
});

describe('RunInstances without capacity or quota', () => {
  const noCapacity = () => awsError('InsufficientInstanceCapacity', 'We currently do not have sufficient t3.small capacity in the Availability Zone you requested (us-east-1b).', { status: 500 });

  test('InsufficientInstanceCapacity in the first subnet: the helper is launched in the next zone\'s subnet, with its own client token, and the build completes', async () => {
    const fault = aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: noCapacity });
    const request = createEvent(properties());
    const response = await aws.drive(onEvent(request));
    expect(fault.hits).toBe(1);
    const runs = aws.handlerRequests('RunInstances').map((r) => r.input as { SubnetId: string; ClientToken: string });
    expect(runs.map((r) => [r.SubnetId, r.ClientToken])).toEqual([
      [HELPER_SUBNET_ID, response.PhysicalResourceId],
      [OTHER_SUBNET, `${response.PhysicalResourceId}-1`],
    ]);
    expect(aws.requests.filter((r) => r.error === 'IdempotentParameterMismatch')).toEqual([]);
    const [instance] = aws.world.instances.values();
    expect(instance.subnetId).toBe(OTHER_SUBNET);
    expect(instance.tags).toContainEqual({ Key: BUILD_ID_TAG, Value: response.PhysicalResourceId });
    const done = await pollUntil(isCompleteEvent(request, response), () => false);
    expect(done.Data?.ImageId).toMatch(/^ami-/);
    expect(liveInstances()).toEqual([]);
  });

  test('no capacity in any subnet: fails at once naming the type and every subnet, nothing left', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: noCapacity, maxHits: 3 });
    await expect(aws.drive(onEvent(createEvent(properties())))).rejects.toThrow(
      new RegExp(`no capacity for the helper's type t3.small .*${HELPER_SUBNET_ID}, ${OTHER_SUBNET}, ${THIRD_SUBNET}.*InsufficientInstanceCapacity`));
    expect(aws.handlerRequests('RunInstances')).toHaveLength(3);
    expect(aws.world.instances.size).toBe(0);
    // (the staging bucket is versioned: a deleted object keeps its old versions until the lifecycle rule expires them)
    expect([...aws.world.buckets.get(STAGING_BUCKET)!.keys()].filter((key) => !key.includes('?versionId='))).toEqual([]);
  });

  test('a stack deployed before SubnetIds existed: only SubnetId is tried, with the build id as client token', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: noCapacity });
    await expect(aws.drive(onEvent(createEvent(helperInstanceProperties())))).rejects.toThrow(/InsufficientInstanceCapacity/);
    expect(aws.handlerRequests('RunInstances').map((r) => (r.input as { SubnetId: string }).SubnetId)).toEqual([HELPER_SUBNET_ID]);
  });

  test.each(['VcpuLimitExceeded', 'InstanceLimitExceeded'])('%s: fails at once naming the quota, no other subnet tried', async (code) => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: () => awsError(code, 'You have requested more vCPU capacity than your current vCPU limit of 1 allows.') });
    await expect(aws.drive(onEvent(createEvent(properties())))).rejects.toThrow(
      /On-Demand instance quota is used up .*Raise the quota "Running On-Demand Standard \(A, C, D, H, I, M, R, T, Z\) instances" \(vCPUs\) in Service Quotas/);
    expect(aws.handlerRequests('RunInstances')).toHaveLength(1);
    expect(aws.world.instances.size).toBe(0);
  });

  test('a later round that lost the launch in the second subnet finds that helper by its client token instead of launching another', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'RunInstances', error: noCapacity });
    const request = createEvent(properties());
    const response = await aws.drive(onEvent(request));
    // GIVEN a round that knows no instance id: onEvent's answer and the progress object lost
    aws.world.buckets.get(STAGING_BUCKET)!.delete(`builds/${response.PhysicalResourceId}/progress.json`);
    await aws.advance(PROVIDER.queryIntervalMs);
    const event = isCompleteEvent(request, { ...response, BuildState: { ...response.BuildState!, InstanceId: undefined } });
    // WHEN
    await aws.drive(isComplete(event));
    // THEN still one helper, the one in the second subnet
    expect([...aws.world.instances.values()].map((i) => [i.subnetId, i.clientToken])).toEqual([[OTHER_SUBNET, launchClientToken(response.PhysicalResourceId, 1)]]);
  });
});
