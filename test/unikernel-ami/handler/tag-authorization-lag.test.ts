/**
 * IAM's lag in seeing a new snapshot's tags: the handler role may write blocks into, and complete,
 * only a snapshot with this stack's tags, so right after StartSnapshot EBS may answer AccessDenied.
 * The handler waits that out for a bounded time; a denial that lasts still fails the build, within
 * that bound, and leaves nothing. On the strict fake AWS, simulated time.
 */
import { NEW_RESOURCE_AUTHORIZATION_WINDOW_MS } from '../../../lib/unikernel-ami/handler/retry';
import { useFakeAws } from '../../fixtures/fake-aws';
import { runLifecycle } from '../../fixtures/lifecycle';

const { aws } = useFakeAws();

function denied(action: string, service: 'ebs' | 'ec2' = 'ebs') {
  return aws.handlerRequests(action, { service }).filter((r) => r.error !== undefined && /AccessDenied|UnauthorizedOperation/.test(r.error));
}

describe('EBS direct: AccessDenied right after StartSnapshot', () => {
  test.each(['PutSnapshotBlock', 'CompleteSnapshot'])('%s denied for the first ten seconds: retried, the Create succeeds and leaves nothing', async (action) => {
    // GIVEN IAM that does not see the new snapshot's tags for ten seconds
    aws.injectFault({ kind: 'access-denied', service: 'ebs', action, maxHits: Infinity, windowMs: 10_000 });
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });
    // THEN
    expect(result.outcomes.map((o) => `${o.reason} ${o.status}`)).toEqual(['create SUCCESS']);
    expect(denied(action).length).toBeGreaterThan(0);
    expect(result.leaks).toEqual([]);
  });

  test.each(['PutSnapshotBlock', 'CompleteSnapshot'])('%s denied for good: the Create fails with the denial within the bound, and leaves nothing', async (action) => {
    aws.injectFault({ kind: 'access-denied', service: 'ebs', action, maxHits: Infinity });
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });
    expect(result.outcomes.map((o) => `${o.reason} ${o.status}`)).toEqual(['create FAILED', 'rollback-delete SUCCESS']);
    expect(result.outcomes[0].failureReason).toMatch(/AccessDenied|not authorized/);
    // Retried only while the snapshot is young: the last denied attempt within the window (and one
    // backoff) of StartSnapshot.
    const started = aws.handlerRequests('StartSnapshot', { service: 'ebs' })[0].time!;
    const attempts = denied(action);
    expect(attempts.length).toBeGreaterThan(1);
    expect(Math.max(...attempts.map((r) => r.time!)) - started).toBeLessThanOrEqual(NEW_RESOURCE_AUTHORIZATION_WINDOW_MS + 20_000);
    expect(result.leaks).toEqual([]);
  });
});

describe('EBS direct: AccessDenied on RegisterImage right after the new snapshot completed', () => {
  test('denied for the first ten seconds: retried, the Create succeeds and leaves nothing', async () => {
    aws.injectFault({ kind: 'access-denied', service: 'ec2', action: 'RegisterImage', maxHits: Infinity, windowMs: 10_000 });
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });
    expect(result.outcomes.map((o) => `${o.reason} ${o.status}`)).toEqual(['create SUCCESS']);
    expect(denied('RegisterImage', 'ec2').length).toBeGreaterThan(0);
    expect(result.leaks).toEqual([]);
  });

  test('denied for good: the Create fails with the denial within the bound, and leaves nothing', async () => {
    aws.injectFault({ kind: 'access-denied', service: 'ec2', action: 'RegisterImage', maxHits: Infinity });
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create' });
    expect(result.outcomes.map((o) => `${o.reason} ${o.status}`)).toEqual(['create FAILED', 'rollback-delete SUCCESS']);
    expect(result.outcomes[0].failureReason).toMatch(/UnauthorizedOperation|not authorized/);
    const started = aws.handlerRequests('StartSnapshot', { service: 'ebs' })[0].time!;
    const attempts = denied('RegisterImage', 'ec2');
    expect(Math.max(...attempts.map((r) => r.time!)) - started).toBeLessThanOrEqual(NEW_RESOURCE_AUTHORIZATION_WINDOW_MS + 20_000);
    expect(result.leaks).toEqual([]);
  });
});
