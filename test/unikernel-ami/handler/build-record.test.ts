/**
 * The build record's format (handler/build-record.ts): what the handler writes is what a reader such
 * as the CLI's `watch` parses back, and it fits an EC2 tag value.
 */
import { BuildRecord, formatBuildRecord, parseBuildRecord, recordOf } from '../../../lib/unikernel-ami/handler/build-record';
import { BUILD_RECORD_TAG } from '../../../lib/unikernel-ami/types';

const STARTED = Date.UTC(2026, 11, 6, 1, 0, 0);

const COMPLETE: BuildRecord = {
  version: 1,
  outcome: 'complete',
  startedAt: STARTED,
  stages: [
    { stage: 'snapshot-started', at: STARTED + 12_000 },
    { stage: 'image-registered', at: STARTED + 250_000 },
    { stage: 'complete', at: STARTED + 290_000 },
  ],
  imageId: 'ami-0123456789abcdef0',
  snapshotId: 'snap-0123456789abcdef0',
  blocks: 37,
  progressPercent: 100,
};

test('a complete record is written as documented and read back unchanged', () => {
  const value = formatBuildRecord(COMPLETE);
  expect(value).toBe(`v=1 outcome=complete started=${STARTED / 1000} stages=snapshot-started@+12/image-registered@+250/complete@+290 `
    + 'image=ami-0123456789abcdef0 snapshot=snap-0123456789abcdef0 blocks=37 progress=100');
  expect(parseBuildRecord(value)).toEqual(COMPLETE);
});

test('times are kept to the second, and a failed record without image details reads back', () => {
  const failed: BuildRecord = { version: 1, outcome: 'failed', startedAt: STARTED + 999, stages: [{ stage: 'failed', at: STARTED + 61_500 }] };
  expect(parseBuildRecord(formatBuildRecord(failed))).toEqual({
    version: 1, outcome: 'failed', startedAt: STARTED, stages: [{ stage: 'failed', at: STARTED + 61_000 }],
    imageId: undefined, snapshotId: undefined, blocks: undefined, progressPercent: undefined,
  });
});

test('keys in another order and unknown keys are accepted; what is no record of format 1 is undefined', () => {
  expect(parseBuildRecord(`outcome=complete later=yes v=1 started=${STARTED / 1000} image=ami-1`)).toMatchObject({ outcome: 'complete', imageId: 'ami-1', stages: [] });
  expect(parseBuildRecord(`v=2 outcome=complete started=${STARTED / 1000}`)).toBeUndefined();
  expect(parseBuildRecord(`v=1 outcome=maybe started=${STARTED / 1000}`)).toBeUndefined();
  expect(parseBuildRecord('v=1 outcome=complete')).toBeUndefined();
  expect(parseBuildRecord(undefined)).toBeUndefined();
});

test('the record is found among a resource\'s tags by its key', () => {
  const tags = [{ Key: 'Name', Value: 'hello' }, { Key: BUILD_RECORD_TAG, Value: formatBuildRecord(COMPLETE) }];
  expect(recordOf(tags)).toEqual(COMPLETE);
  expect(recordOf([{ Key: 'Name', Value: 'v=1 outcome=complete started=1' }])).toBeUndefined();
});

test('a record that would not fit an EC2 tag value (256 characters) is refused, not cut', () => {
  const long: BuildRecord = { ...COMPLETE, imageId: `ami-${'0'.repeat(240)}` };
  expect(() => formatBuildRecord(long)).toThrow(/more than an EC2 tag value holds/);
  expect(formatBuildRecord(COMPLETE).length).toBeLessThanOrEqual(256);
});
