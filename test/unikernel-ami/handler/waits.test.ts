/**
 * The handler waits no longer than AWS (issue 18): on the fake account's simulated clock, through
 * the real provider framework, each wait of a build (AWS reaching a state) is acted on at most one
 * waiter interval after AWS reached it, and a build takes at most twice the Lambda invocations of
 * the waiter's former plain 15-second polling. The figures themselves are printed by `npm run bench`
 * (bench/waits.ts); here only the bounds, for a sweep of AWS's state times (wait-timeline.ts).
 */
import { OPERATION_TIMING } from '../../../lib/unikernel-ami/types';
import { FakeAws } from '../../fixtures/fake-aws';
import { STRATEGIES } from '../../fixtures/lifecycle';
import { measureWaits, sweepSettings, SWEEP_BUILDS, WaitTimeline } from '../../fixtures/wait-timeline';

const aws = new FakeAws();
const INTERVAL_MS = OPERATION_TIMING.queryIntervalSeconds * 1000;
/** The waiter's interval before issue 18. */
const FORMER_INTERVAL_MS = 15_000;

/**
 * The fewest invocations the former waiter made for a build: onEvent, the isComplete at once, and
 * one every 15 s for as long as AWS itself took (the waits follow one another).
 */
function formerInvocationsAtLeast(build: WaitTimeline): number {
  return 2 + Math.floor(build.awsMs / FORMER_INTERVAL_MS);
}

describe.each(STRATEGIES)('the waits of a %s build', (strategy) => {
  let builds: WaitTimeline[];

  beforeAll(async () => {
    builds = [];
    for (let k = 0; k < SWEEP_BUILDS; k++) {
      builds.push(await measureWaits(aws, strategy, sweepSettings(k)));
    }
  });

  test('every build of the sweep succeeds, and waits for each state AWS must reach', () => {
    expect(builds.map((b) => b.status)).toEqual(builds.map(() => 'SUCCESS'));
    expect(builds[0].waits.map((w) => w.name)).toEqual(strategy === 'helper-instance'
      ? ['helper instance pending -> running', 'SSM agent online', 'helper script run (SSM command)', 'snapshot pending -> completed', 'AMI pending -> available']
      : ['snapshot pending -> completed (after CompleteSnapshot)', 'AMI pending -> available']);
    // The sweep does move the state changes to other points between two polls.
    expect(new Set(builds.map((b) => b.waits[0].addedMs)).size).toBeGreaterThan(3);
  });

  test('the handler acts on each state at most one waiter interval after AWS reached it', () => {
    for (const build of builds) {
      for (const wait of build.waits) {
        expect({ wait: wait.name, addedMs: wait.addedMs, withinOneInterval: wait.addedMs >= 0 && wait.addedMs <= INTERVAL_MS })
          .toEqual({ wait: wait.name, addedMs: wait.addedMs, withinOneInterval: true });
      }
    }
  });

  test('a build takes at most twice the invocations of the former plain 15-second polling', () => {
    for (const build of builds) {
      expect(build.invocations).toBeLessThanOrEqual(2 * formerInvocationsAtLeast(build));
    }
  });
});
