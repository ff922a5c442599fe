/**
 * Twenty unikernels in one stack, built (and deleted) at once against the fake AWS account with a
 * third of the handler's calls throttled (a seeded random choice, so every run throttles the same
 * calls): every build must succeed with its own AMI holding its own disk, and none may leak.
 */
import { DiskLayout } from '../../../lib/disk-image';
import { BUILD_ID_TAG } from '../../../lib/unikernel-ami/types';
import { diskImageContent, useFakeAws } from '../../fixtures/fake-aws';
import { DEFAULT_KERNEL, Lifecycle, LifecycleOptions, runLifecycles } from '../../fixtures/lifecycle';

const COUNT = 20;
const { aws } = useFakeAws();

/** Half helper-instance, half ebs-direct builds, each with its own name and kernel arguments. */
function unikernels(lifecycle: Lifecycle): LifecycleOptions[] {
  return Array.from({ length: COUNT }, (_, i) => ({
    strategy: i % 2 === 0 ? 'helper-instance' : 'ebs-direct',
    lifecycle,
    logicalId: `Unikernel${i}`,
    properties: { Name: `unikernel-${i}`, KernelArgs: `--id=${i}` },
  }));
}

function contentOf(options: LifecycleOptions): string {
  return diskImageContent({ kernel: DEFAULT_KERNEL, name: options.properties!.Name!, kernelArgs: options.properties!.KernelArgs, layout: DiskLayout.WHOLE_VOLUME, volumeSizeGiB: 1 });
}

function throttled(): { calls: number; throttled: number } {
  const handler = aws.requests.filter((r) => r.principal === 'handler');
  return { calls: handler.length, throttled: handler.filter((r) => ['RequestLimitExceeded', 'ThrottlingException', 'SlowDown', 'RequestThrottledException'].includes(r.error ?? '')).length };
}

test(`${COUNT} unikernels built at once with a third of the calls throttled: all succeed, each AMI holds its own disk, none leaks`, async () => {
  // GIVEN a third of the handler's calls throttled
  aws.injectRandomFaults('throttle', 1 / 3, 20);
  // WHEN twenty builds run at once
  const options = unikernels('create');
  const results = await runLifecycles(aws, options);
  // THEN
  results.forEach((result, i) => {
    const [created] = result.outcomes;
    expect({ i, status: created.status, reason: created.failureReason, leaks: result.leaks, killed: created.killedInvocations }).toEqual({ i, status: 'SUCCESS', reason: undefined, leaks: [], killed: 0 });
    const snapshot = aws.world.snapshots.get(created.data!.SnapshotId)!;
    expect(snapshot.tags).toContainEqual({ Key: BUILD_ID_TAG, Value: created.physicalResourceId });
    expect(snapshot.content).toBe(contentOf(options[i]));
  });
  expect(new Set(results.map((r) => r.outcomes[0].data!.ImageId)).size).toBe(COUNT);
  const figures = throttled();
  expect(figures.throttled / figures.calls).toBeGreaterThan(0.25);
  process.stdout.write(`\nconcurrent builds: ${COUNT} unikernels at once, ${figures.throttled} of ${figures.calls} handler calls throttled, ${results.filter((r) => r.outcomes[0].status === 'SUCCESS').length} succeeded, ${results.reduce((n, r) => n + r.leaks.length, 0)} leaks found\n`);
});

test(`${COUNT} unikernels created and deleted at once with a third of the calls throttled: nothing is left`, async () => {
  aws.injectRandomFaults('throttle', 1 / 3, 21);
  const results = await runLifecycles(aws, unikernels('delete'));
  for (const result of results) {
    expect(result.outcomes.map((o) => o.status)).toEqual(['SUCCESS', 'SUCCESS']);
    expect(result.leaks).toEqual([]);
  }
  expect(aws.world.snapshots.size).toBe(0);
  expect([...aws.world.images.values()].filter((i) => i.owner === 'self' && i.state !== 'deregistered')).toEqual([]);
});
