/**
 * The behaviours issue 11 lists (items 1-7) and issue 7's handler items, each as a whole lifecycle
 * against the strict fake AWS (test/fixtures/fake-aws) driven as CloudFormation and the provider
 * framework would (test/fixtures/lifecycle.ts). Each test says what goes wrong in AWS and what the
 * outcome must be: success with real ids, or a failure a user can act on, and nothing left behind.
 */
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { onEvent } from '../../../lib/unikernel-ami/handler/index';
import { BUILD_ID_TAG, MANAGED_TAG, STACK_TAG } from '../../../lib/unikernel-ami/types';
import {
  deleteEvent,
  ebsDirectProperties,
  HELPER_IMAGE_ID,
  HELPER_SUBNET_ID,
  helperInstanceProperties,
  STACK_NAME,
  updateEvent,
} from '../../fixtures/custom-resource';
import { awsError, useFakeAws } from '../../fixtures/fake-aws';
import { CfnOutcome, CFN_RESPONSE_LIMIT_BYTES, completeRequest, LifecycleResult, PROVIDER, runLifecycle, Strategy, STRATEGIES } from '../../fixtures/lifecycle';
import { callsOf } from './fault-matrix';

const { aws } = useFakeAws();

/** A lifecycle's outcomes, in a form that reads well when a test fails. */
function summary(result: LifecycleResult) {
  return {
    outcomes: result.outcomes.map((o) => `${o.reason} ${o.status} ${o.physicalResourceId}${o.failureReason ? `: ${o.failureReason.slice(0, 160)}` : ''}`),
    leaks: result.leaks.map((leak) => `${leak.kind} ${leak.id} (${leak.state ?? ''})`),
    killed: result.outcomes.reduce((n, o) => n + o.killedInvocations, 0),
  };
}

/** A successful build: a build id, and attributes naming an AMI and its snapshot (which, unless `gone`, are still there). */
function expectSuccessWithRealIds(outcome: CfnOutcome, gone = false): void {
  expect(outcome.status).toBe('SUCCESS');
  expect(outcome.physicalResourceId).toMatch(/^mua-[0-9a-f]{16}$/);
  expect(outcome.data).toEqual({
    ImageId: expect.stringMatching(/^ami-/), SnapshotId: expect.stringMatching(/^snap-/), KernelId: expect.stringMatching(/^aki-/), ImageName: `hello-${outcome.physicalResourceId}`,
  });
  if (gone) {
    return;
  }
  const image = aws.world.images.get(outcome.data?.ImageId ?? '');
  expect(image?.state).toBe('available');
  expect(image?.blockDeviceMappings[0].Ebs?.SnapshotId).toBe(outcome.data?.SnapshotId);
  expect(aws.world.snapshots.get(outcome.data!.SnapshotId)?.state).toBe('completed');
}

/** A failure a user can act on: it names the build and says what went wrong, and the response fits CloudFormation's limit. */
function expectActionableFailure(outcome: CfnOutcome, what: RegExp): void {
  expect(outcome.status).toBe('FAILED');
  expect(outcome.failureReason).toMatch(what);
  expect(outcome.failureReason).not.toBe('Operation timed out');
  expect(outcome.responseBytes).toBeLessThan(CFN_RESPONSE_LIMIT_BYTES);
}

describe('issue 11, item 1: the first isComplete runs before EC2 shows the new helper', () => {
  test('DescribeInstances answering InvalidInstanceID.NotFound right after launch is waited out; the Create succeeds and leaves nothing', async () => {
    // GIVEN EC2 answers NotFound to calls naming a new instance for its first seconds (as it documents)
    aws.configure({ lagByIdMs: 10_000 });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    // THEN
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
    expectSuccessWithRealIds(result.outcomes[0]);
    expect(aws.handlerRequests('DescribeInstances', { service: 'ec2', phase: 'Create/isComplete' }).some((r) => r.error === 'InvalidInstanceID.NotFound')).toBe(true);
  });
});

describe('issue 11, item 2: a Create whose onEvent fails, whose Delete the framework then ignores', () => {
  test.each(STRATEGIES)('%s: a refusal at any call of onEvent leaves nothing running or stored, though no Delete reaches the handler', async (strategy) => {
    // GIVEN the calls onEvent makes in a clean Create
    const calls = (await callsOf(aws, strategy, 'create')).filter((call) => call.startsWith('Create/onEvent|')).map((call) => call.split('|')[1]);
    expect(calls.length).toBeGreaterThan(1);
    for (const call of calls) {
      // WHEN that call is refused for good (a quota, a missing permission), with EC2's tag filters lagging
      aws.reset();
      aws.configure({ lagByFilterMs: 60_000 });
      const [service, action] = call.split(':') as ['ec2' | 's3' | 'ebs' | 'ssm', string];
      aws.injectFault({ kind: 'refuse', service, action, phase: 'Create/onEvent', maxHits: Infinity, error: () => awsError('VolumeLimitExceeded', `A limit of your account stops ${action}.`) });
      const result = await runLifecycle(aws, { strategy, lifecycle: 'create' });
      // THEN the Create failed saying why, and nothing is left
      expect({ call, ...summary(result) }).toMatchObject({ call, leaks: [], killed: 0 });
      expectActionableFailure(result.outcomes[0], new RegExp(action));
    }
  });
});

describe('issue 11, item 3: a failed rebuild (no Delete comes for the new physical id)', () => {
  test('the helper script failing in the Update leaves no instance, volume, snapshot or staged object, and the old AMI serves on', async () => {
    // GIVEN the rebuild's helper script fails
    aws.injectFault({ kind: 'error-state', service: 'ssm', action: 'SendCommand', phase: 'Update/isComplete', maxHits: Infinity });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'rebuild' });
    // THEN
    const [created, updated] = result.outcomes;
    expectSuccessWithRealIds(created);
    expectActionableFailure(updated, /helper instance i-[0-9a-f]+ could not write the disk image/);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
    expect(result.livePhysicalId).toBe(created.physicalResourceId);
    expect(result.keptBuildIds).toEqual([created.physicalResourceId]);
  });
});

describe('issue 11, item 4: the rollback Update sends the old properties back', () => {
  test.each(STRATEGIES)('%s: the old build, which still exists, is returned with its attributes; nothing is rebuilt and nothing leaks', async (strategy) => {
    // WHEN a rebuild succeeds and then the stack rolls back
    const result = await runLifecycle(aws, { strategy, lifecycle: 'rollback' });
    // THEN
    const [created, updated, rolledBack, cleanup] = result.outcomes;
    expectSuccessWithRealIds(created);
    expectSuccessWithRealIds(updated, true);
    expect(updated.physicalResourceId).not.toBe(created.physicalResourceId);
    expect(cleanup).toMatchObject({ reason: 'rollback-delete', status: 'SUCCESS', physicalResourceId: updated.physicalResourceId });
    expect(rolledBack).toMatchObject({ reason: 'rollback-update', status: 'SUCCESS', physicalResourceId: created.physicalResourceId, data: created.data });
    const launches = strategy === 'helper-instance' ? aws.handlerRequests('RunInstances', { service: 'ec2' }) : aws.handlerRequests('StartSnapshot', { service: 'ebs' });
    expect(new Set(launches.map((r) => String(r.input.ClientToken))).size).toBe(2);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
    expect(result.livePhysicalId).toBe(created.physicalResourceId);
  });
});

describe('issue 11, item 5: APIs without client tokens, lagging lists and stale states', () => {
  test('CreateSnapshot (no client token) while the tag filter does not show the first snapshot: one snapshot in the end, even under retain', async () => {
    // GIVEN tag filters that lag longer than the provider's polling interval
    aws.configure({ lagByFilterMs: 60_000 });
    // WHEN a retained build is created and the stack deleted
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'retain' });
    // THEN exactly the retained AMI and its snapshot are left
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
    expect(result.outcomes.map((o) => o.status)).toEqual(['SUCCESS', 'SUCCESS']);
    expect(aws.world.snapshots.size).toBe(1);
  });

  test('SendCommand (no client token) is sent once, however long SSM takes to list the invocation', async () => {
    aws.configure({ ssmLagMs: 60_000 });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    expectSuccessWithRealIds(result.outcomes[0]);
    expect(aws.handlerRequests('SendCommand', { service: 'ssm' })).toHaveLength(1);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });

  test('Describe calls that show states twenty seconds old neither fail the build nor make it repeat a step EC2 refuses', async () => {
    aws.configure({ staleStateMs: 20_000 });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'delete' });
    expectSuccessWithRealIds(result.outcomes[0], true);
    expect(result.outcomes[1].status).toBe('SUCCESS');
    expect(aws.requests.filter((r) => r.principal === 'handler' && ['VolumeInUse', 'IncorrectState'].includes(r.error ?? ''))).toEqual([]);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });
});

describe('pagination where the handler pages', () => {
  test.each(STRATEGIES)('%s: with one item per page, the handler follows NextToken and nothing is missed', async (strategy) => {
    // GIVEN Describe calls that answer one item per page
    aws.configure({ pageSize: 1 });
    // WHEN a rollback (two builds of the resource: lookups by the resource's tags find both)
    const result = await runLifecycle(aws, { strategy, lifecycle: 'rollback' });
    // THEN
    expect(result.outcomes.map((o) => o.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']);
    expect(aws.requests.filter((r) => r.principal === 'handler' && r.input.NextToken !== undefined).length).toBeGreaterThan(0);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });
});

describe('issue 11, item 6: the handler has a deadline of its own below CloudFormation\'s', () => {
  test('ebs-direct: a snapshot that DescribeSnapshots never finds fails the build cleanly before the provider gives up', async () => {
    // GIVEN DescribeSnapshots never knows the build's snapshot
    aws.injectFault({ kind: 'refuse', service: 'ec2', action: 'DescribeSnapshots', phase: 'Create/isComplete', maxHits: Infinity, error: () => awsError('InvalidSnapshot.NotFound', 'The snapshot does not exist.') });
    // WHEN
    const started = aws.clock.now();
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });
    // THEN the handler said why, in time, and the rollback's Delete removed the snapshot
    expectActionableFailure(result.outcomes[0], /snap-[0-9a-f]+/);
    expect(result.outcomes[0].failureReason).toContain(result.outcomes[0].physicalResourceId);
    const failedAt = Math.max(...aws.requests.filter((r) => r.phase === 'Create/isComplete').map((r) => r.time!));
    expect(failedAt - started).toBeLessThan(PROVIDER.totalTimeoutMs);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });

  test.each<[Strategy, 'ec2' | 'ebs', string]>([
    ['helper-instance', 'ec2', 'CreateSnapshot'],
    ['ebs-direct', 'ebs', 'CompleteSnapshot'],
  ])('%s: a snapshot that never completes fails the build with the handler\'s own message, and nothing is left', async (strategy, service, action) => {
    aws.injectFault({ kind: 'never-finishes', service, action, maxHits: Infinity });
    const result = await runLifecycle(aws, { strategy, lifecycle: 'create' });
    expectActionableFailure(result.outcomes[0], /did not finish within \d+ minutes/);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });
});

describe('issue 11, item 7: failure messages fit CloudFormation\'s 4,096-byte response', () => {
  test('a helper script failing with a long error output: the response stays well under the limit and keeps the reason and the build id', async () => {
    // GIVEN a script whose stderr holds 20 kB of other output around its reason
    aws.injectFault({ kind: 'error-state', service: 'ssm', action: 'SendCommand', maxHits: Infinity });
    const noise = (n: number) => 'Traceback (most recent call last):\n  File "<stdin>", line 42, in <module>\n'.repeat(n);
    const noisy = `${noise(60)}mirage-unikernel-ami helper: block 7 of blocks.gz does not match its manifest checksum (corrupt download?)\n${noise(200)}`;
    const original = aws.world.advance.bind(aws.world);
    jest.spyOn(aws.world, 'advance').mockImplementation(() => {
      original();
      for (const invocation of aws.world.invocations) {
        if (invocation.status === 'Failed') invocation.stderr = noisy;
      }
    });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    // THEN
    const [failed] = result.outcomes;
    expectActionableFailure(failed, /could not write the disk image/);
    expect(failed.responseBytes).toBeLessThan(CFN_RESPONSE_LIMIT_BYTES * 0.75);
    expect(failed.failureReason).toContain(failed.physicalResourceId);
    expect(failed.failureReason).toContain('does not match its manifest checksum');
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });

  test('an AWS refusal with a 6 kB message (UnauthorizedOperation\'s encoded authorization message): the FAILED response stays under CloudFormation\'s 4,096 bytes and names the build', async () => {
    // GIVEN EC2 refusing the helper's launch with an UnauthorizedOperation whose encoded
    // authorization message alone is larger than CloudFormation accepts for a whole response
    const encoded = 'A'.repeat(6000);
    aws.injectFault({
      kind: 'refuse', service: 'ec2', action: 'RunInstances', maxHits: Infinity,
      error: () => awsError('UnauthorizedOperation', `You are not authorized to perform this operation. Encoded authorization failure message: ${encoded}`, { status: 403 }),
    });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    // THEN
    const [failed] = result.outcomes;
    expect(failed.status).toBe('FAILED');
    expect(failed.failureReason).toMatch(/UnauthorizedOperation|not authorized/);
    // A failed Create has no physical id of its own (the framework answers its CREATE_FAILED
    // marker): the build id in the reason is how the user finds the build's logs and resources.
    expect(failed.failureReason).toMatch(/\.\.\. \(build mua-[0-9a-f]+\)/);
    expect(failed.responseBytes).toBeLessThan(CFN_RESPONSE_LIMIT_BYTES);
    expect(result.leaks).toEqual([]);
  });
});

describe('issue 7: the handler\'s side of least privilege', () => {
  test('(a) AccessDenied on the first call to a resource the build just created (tag-based authorization lagging) is retried for a short while', async () => {
    aws.injectFault({ kind: 'access-denied', service: 'ssm', action: 'SendCommand', maxHits: 3 });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    expectSuccessWithRealIds(result.outcomes[0]);
    expect(aws.handlerRequests('SendCommand', { service: 'ssm' }).filter((r) => r.error === 'AccessDeniedException')).toHaveLength(3);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });

  test('(a) AccessDenied that lasts is not retried for ever: the build fails saying so, and leaves nothing', async () => {
    aws.injectFault({ kind: 'access-denied', service: 'ssm', action: 'SendCommand', maxHits: Infinity });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    expectActionableFailure(result.outcomes[0], /not authorized|AccessDenied/);
    expect(summary(result)).toMatchObject({ leaks: [], killed: 0 });
  });

  test('(b) a Delete whose lookups are denied fails instead of reporting that nothing was left', async () => {
    // GIVEN a helper build whose Delete cannot list instances (a role that lost ec2:DescribeInstances);
    // EC2 consistent at once, so that only the Delete is on trial
    aws.configure({ lagByIdMs: 0 });
    aws.injectFault({ kind: 'access-denied', service: 'ec2', action: 'DescribeInstances', phase: 'Delete/onEvent', maxHits: Infinity });
    aws.injectFault({ kind: 'access-denied', service: 'ec2', action: 'DescribeInstances', phase: 'Delete/isComplete', maxHits: Infinity });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'delete' });
    // THEN
    const deletes = result.outcomes.filter((o) => o.requestType === 'Delete');
    expect(deletes.length).toBeGreaterThan(0);
    for (const outcome of deletes) {
      expectActionableFailure(outcome, /DescribeInstances/);
    }
  });

  test('(c) a tag-only Update checks that the AMI still exists before it changes any tag', async () => {
    // GIVEN a finished build whose AMI was deregistered outside CloudFormation
    const built = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });
    const buildId = built.outcomes[0].physicalResourceId;
    aws.world.images.get(built.outcomes[0].data!.ImageId)!.state = 'deregistered';
    aws.world.images.get(built.outcomes[0].data!.ImageId)!.deregisteredAt = aws.clock.now();
    aws.requests.length = 0;
    // WHEN the tags change
    const before = ebsDirectProperties();
    const request = updateEvent(buildId, ebsDirectProperties({ Tags: { project: 'renamed' } }), before);
    const update = aws.drive(onEvent(request));
    // THEN
    await expect(update).rejects.toThrow(new RegExp(`AMI of build ${buildId} is gone`));
    expect(aws.requests.filter((r) => r.action === 'CreateTags' || r.action === 'DeleteTags')).toEqual([]);
  });

  test('(d) a Delete finds helper instances with the build\'s tags even when the build finished', async () => {
    // GIVEN a finished helper build (EC2 consistent at once), and an instance with the build's tags that escaped a repeated Create
    aws.configure({ lagByIdMs: 0 });
    const built = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    const buildId = built.outcomes[0].physicalResourceId;
    const tags = [{ Key: BUILD_ID_TAG, Value: buildId }, { Key: MANAGED_TAG, Value: 'true' }, { Key: STACK_TAG, Value: STACK_NAME }];
    const escaped = await aws.drive(new EC2Client({}).send(new RunInstancesCommand({
      ImageId: HELPER_IMAGE_ID, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, SubnetId: HELPER_SUBNET_ID,
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }, { ResourceType: 'volume', Tags: tags }],
    })));
    const escapedId = escaped.Instances![0].InstanceId!;
    await aws.advance(60_000);
    // WHEN the stack is deleted
    await completeRequest(aws, deleteEvent(buildId, helperInstanceProperties()), { polls: 40 });
    // THEN the escaped instance is terminated with its volumes
    await aws.advance(60_000);
    expect(aws.world.instances.get(escapedId)?.state).toBe('terminated');
    expect([...aws.world.volumes.values()].filter((v) => v.state !== 'deleted')).toEqual([]);
  });

  test.each(STRATEGIES)('(e) %s: every resource the build creates is tagged managed, stack and build id in its create request', async (strategy) => {
    const result = await runLifecycle(aws, { strategy, lifecycle: 'create' });
    const buildId = result.outcomes[0].physicalResourceId;
    const creates = aws.requests.filter((r) => r.principal === 'handler' && ['RunInstances', 'CreateVolume', 'CreateSnapshot', 'RegisterImage', 'StartSnapshot'].includes(r.action));
    expect(creates.length).toBeGreaterThan(1);
    const expected = expect.arrayContaining([
      { Key: MANAGED_TAG, Value: 'true' },
      { Key: STACK_TAG, Value: STACK_NAME },
      { Key: BUILD_ID_TAG, Value: buildId },
    ]);
    for (const request of creates) {
      const input = request.input as { TagSpecifications?: { ResourceType: string; Tags: unknown[] }[]; Tags?: unknown[] };
      const tagSets = input.TagSpecifications?.map((s) => s.Tags) ?? [input.Tags];
      expect(tagSets.length).toBeGreaterThan(0);
      for (const tags of tagSets) {
        expect(tags).toEqual(expected);
      }
      if (request.action === 'RunInstances') {
        expect(input.TagSpecifications!.map((s) => s.ResourceType).sort()).toEqual(['instance', 'network-interface', 'volume']);
      }
    }
  });
});
