/**
 * The helper-instance strategy's own steps (helper-instance.ts) on the fake account, through the
 * real provider framework: CreateSnapshot has no client token, so a lost answer makes a second
 * snapshot, and the build deletes the duplicate before it reports success. Then the wording of a
 * script's failure, and the subnets, client tokens and quota names of the helper's launch. (The SSM
 * statuses the build waits through, Delayed among them, are in helper-faults.test.ts.)
 */
import { helperSubnets, launchClientToken, onDemandQuotaName, scriptFailure, scriptReason } from '../../../lib/unikernel-ami/handler/helper-instance';
import { SCRIPT_MESSAGE_PREFIX } from '../../../lib/unikernel-ami/handler/helper-script';
import { awsError, useFakeAws } from '../../fixtures/fake-aws';
import { runLifecycle } from '../../fixtures/lifecycle';

const { aws, logLines } = useFakeAws();
const logged = (step: string) => logLines.map((line) => JSON.parse(line)).filter((line) => line.step === step);

const snapshotRequests = (action: string) => aws.requests.filter((r) => r.principal === 'handler' && r.action === action);

describe('duplicate snapshots (CreateSnapshot has no client token)', () => {
  test('the answer of CreateSnapshot is lost: the build makes a second snapshot, deletes the first before it succeeds, and nothing is left', async () => {
    // GIVEN the first CreateSnapshot takes effect but its answer never arrives
    const fault = aws.injectFault({ kind: 'lost-response', service: 'ec2', action: 'CreateSnapshot' });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    // THEN
    expect(fault.hits).toBe(1);
    const [created] = result.outcomes;
    expect(created.status).toBe('SUCCESS');
    const kept = created.data!.SnapshotId;
    const made = [...aws.world.snapshots.keys()];
    expect(snapshotRequests('CreateSnapshot')).toHaveLength(2);
    // The duplicate is deleted by its id; the AMI's snapshot never is.
    const deleted = snapshotRequests('DeleteSnapshot').map((r) => r.input.SnapshotId);
    expect(deleted).not.toContain(kept);
    expect(deleted.length).toBeGreaterThanOrEqual(1);
    expect(made).toEqual([kept]);
    expect(logged('delete-duplicate-snapshot')).toEqual([expect.objectContaining({ snapshotId: deleted[0], gone: true })]);
    expect(result.leaks).toEqual([]);
    expect(result.wrongfulDeletes).toEqual([]);
  });

  test('a duplicate EC2 will not delete at once is waited for: the build answers not complete until it is gone, then succeeds with nothing left', async () => {
    // GIVEN a lost CreateSnapshot answer, and the first DeleteSnapshot of the duplicate refused
    aws.injectFault({ kind: 'lost-response', service: 'ec2', action: 'CreateSnapshot' });
    const refused = aws.injectFault({
      kind: 'refuse', service: 'ec2', action: 'DeleteSnapshot',
      error: () => awsError('InvalidSnapshot.InUse', 'The snapshot is currently in use.'),
    });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    // THEN
    expect(refused.hits).toBe(1);
    const [created] = result.outcomes;
    expect(created.status).toBe('SUCCESS');
    const deletes = snapshotRequests('DeleteSnapshot');
    expect(deletes.length).toBeGreaterThanOrEqual(2);
    expect(new Set(deletes.map((r) => r.input.SnapshotId)).size).toBe(1);
    expect(logged('delete-duplicate-snapshot').map((line) => line.gone)).toEqual([false, true]);
    expect([...aws.world.snapshots.keys()]).toEqual([created.data!.SnapshotId]);
    expect(result.leaks).toEqual([]);
  });
});

describe('SSM not showing the sent command (GetCommandInvocation answers InvocationDoesNotExist)', () => {
  const doesNotExist = () => awsError('InvocationDoesNotExist', 'The command ID and instance ID you specified did not match any invocations.');

  test('for the first minutes after SendCommand: waited out, and the build completes', async () => {
    const fault = aws.injectFault({ kind: 'refuse', service: 'ssm', action: 'GetCommandInvocation', maxHits: 4, error: doesNotExist });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    expect(fault.hits).toBe(4);
    expect(result.outcomes[0].status).toBe('SUCCESS');
    expect(result.leaks).toEqual([]);
  });

  test('for longer than EC2\'s and SSM\'s lag (five minutes): the build fails saying so, and leaves nothing', async () => {
    aws.injectFault({ kind: 'refuse', service: 'ssm', action: 'GetCommandInvocation', maxHits: Infinity, error: doesNotExist });
    const result = await runLifecycle(aws, { strategy: 'helper-instance', lifecycle: 'create' });
    const [created] = result.outcomes;
    expect(created.status).toBe('FAILED');
    expect(created.failureReason).toMatch(/did not match any invocations/);
    expect(result.leaks).toEqual([]);
  });
});

describe('scriptFailure: the failure CloudFormation shows for a script that did not succeed', () => {
  const INSTANCE = 'i-0123456789abcdef0';
  const COMMAND = '11111111-2222-3333-4444-555555555555';

  test('Cancelling counts as cancelled, with the status details when they differ', () => {
    expect(scriptFailure(INSTANCE, COMMAND, { Status: 'Cancelling', StatusDetails: 'Cancelling' }))
      .toMatch(new RegExp(`^The helper script \\(SSM command ${COMMAND}\\) on ${INSTANCE} was cancelled before it finished \\(Cancelling\\): ssm:CancelCommand`));
    expect(scriptFailure(INSTANCE, COMMAND, { Status: 'Cancelled', StatusDetails: 'Terminated' })).toMatch(/\(Cancelled, Terminated\): ssm:CancelCommand was called on it\. Redeploy to start a new build\.$/);
  });

  test('a failed script that wrote nothing says so, with its status once and its exit code', () => {
    expect(scriptFailure(INSTANCE, COMMAND, { Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 1, StandardErrorContent: '' }))
      .toBe(`The helper instance ${INSTANCE} could not write the disk image (SSM command ${COMMAND} Failed, exit code 1): (no output)`);
  });

  test('scriptReason: the script\'s own last message wins over other output; without one, the end of stderr', () => {
    const own = `${SCRIPT_MESSAGE_PREFIX} first message\nnoise\n${SCRIPT_MESSAGE_PREFIX} the write failed\nmore noise`;
    expect(scriptReason(own)).toBe(`${SCRIPT_MESSAGE_PREFIX} the write failed`);
    expect(scriptReason(`${'x'.repeat(400)}the end`)).toBe(`...${'x'.repeat(293)}the end`);
    expect(scriptReason(undefined)).toBe('');
  });
});

describe('the helper\'s launch', () => {
  test('helperSubnets: SubnetId first, then the others once each', () => {
    expect(helperSubnets({ SubnetId: 'subnet-a', SubnetIds: ['subnet-b', 'subnet-a', 'subnet-c'] } as never)).toEqual(['subnet-a', 'subnet-b', 'subnet-c']);
    expect(helperSubnets({ SubnetId: 'subnet-a' } as never)).toEqual(['subnet-a']);
  });

  test('launchClientToken: the build id in the first subnet, the build id and the index in the others', () => {
    expect(launchClientToken('mua-0123456789abcdef', 0)).toBe('mua-0123456789abcdef');
    expect(launchClientToken('mua-0123456789abcdef', 2)).toBe('mua-0123456789abcdef-2');
  });

  test('onDemandQuotaName: the standard families share one quota; the others have their family\'s', () => {
    expect(onDemandQuotaName('t3.small')).toContain('Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances');
    expect(onDemandQuotaName('m5.large')).toContain('Standard');
    expect(onDemandQuotaName('g5.xlarge')).toBe('the Running On-Demand quota of the g family');
    expect(onDemandQuotaName('inf2.xlarge')).toBe('the Running On-Demand quota of the inf family');
    expect(onDemandQuotaName('dl1.24xlarge')).toBe('the Running On-Demand quota of the dl family');
  });
});
