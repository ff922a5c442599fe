import { BuildProgress } from '../../lib/cli/build-progress';
import { StageLine } from '../../lib/unikernel-ami/handler/stages';

const BUILD = 'mua-0123456789abcdef';
const line = (stage: StageLine['stage'], at: number, fields: Partial<StageLine> = {}): StageLine => ({ stage, buildId: BUILD, at, ...fields });

describe('BuildProgress', () => {
  test('a stage logged again keeps its first time; its figures take the latest value; only changes count', () => {
    const build = new BuildProgress(BUILD);
    expect(build.add(line('started', 0, { strategy: 'ebs-direct' }))).toBe(true);
    expect(build.add(line('blocks-written', 5_000, { blocks: 128 }))).toBe(true);
    expect(build.add(line('blocks-written', 9_000, { blocks: 256 }))).toBe(true);
    expect(build.add(line('blocks-written', 9_000, { blocks: 256 }))).toBe(false);
    expect(build.reached.find((s) => s.stage === 'blocks-written')?.at).toBe(5_000);
    expect(build.describe()).toBe('blocks written 256');
    expect(build.durations(12_000)).toEqual([{ stage: 'started', ms: 5_000 }, { stage: 'blocks-written', ms: 7_000 }]);
  });

  test('during the snapshot, what is left extrapolates EC2\'s progress, plus the typical time of the AMI after it', () => {
    const build = new BuildProgress(BUILD);
    build.add(line('started', 0, { strategy: 'ebs-direct' }));
    build.add(line('verified', 10_000));
    build.add(line('snapshot', 20_000, { progressPercent: 0 }));
    const afterSnapshot = build.estimateLeftMs(20_000)! - 120_000; // no progress yet: the snapshot's typical 2 minutes
    build.add(line('snapshot', 60_000, { progressPercent: 40 }));
    const bar40 = build.fraction(60_000);
    // 40% took 40 s: 60 s more at that pace.
    expect(build.estimateLeftMs(60_000)).toBe(60_000 + afterSnapshot);
    build.add(line('snapshot', 80_000, { progressPercent: 80 }));
    // 80% took 60 s: 15 s more.
    expect(build.estimateLeftMs(80_000)).toBe(15_000 + afterSnapshot);
    expect(build.fraction(80_000)).toBeGreaterThan(bar40);
    expect(build.describe()).toBe('snapshot 80%');
  });

  test('an outcome ends the estimate; failed wins over any stage and keeps its reason and log stream', () => {
    const build = new BuildProgress(BUILD);
    build.add(line('started', 0));
    build.add(line('helper-launched', 1_000, { instanceId: 'i-0abc' }));
    build.add(line('failed', 2_000, { reason: 'The helper instance i-0abc is stopped' }), 'stream-1');
    expect(build.outcome).toBe('failed');
    expect(build.current).toBe('failed');
    expect(build.estimateLeftMs(3_000)).toBeUndefined();
    expect([build.reason, build.failedIn]).toEqual(['The helper instance i-0abc is stopped', 'stream-1']);
  });
});
