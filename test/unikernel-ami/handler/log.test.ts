import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { parseStageLine, progressPercentOf, STAGE_REASON_MAX_CHARS } from '../../../lib/unikernel-ami/handler/stages';

describe('StepLog', () => {
  test('writes one JSON line per step with the build id, the fields and the time since it was made', () => {
    // GIVEN a clock that reads 1000 at creation and 1250 at the step
    const times = [1000, 1250];
    const lines: string[] = [];
    const log = new StepLog('mua-0123456789abcdef', () => times.shift()!, (line) => lines.push(line));
    // WHEN
    log.step('run-instances', { instanceId: 'i-0abc', attempt: 2, skipped: undefined });
    // THEN
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    expect(JSON.parse(lines[0])).toEqual({ step: 'run-instances', buildId: 'mua-0123456789abcdef', instanceId: 'i-0abc', attempt: 2, elapsedMs: 250 });
  });
});

describe('StepLog.stage', () => {
  test('writes a stage line that parseStageLine reads back, as Lambda\'s text and JSON formats carry it', () => {
    // GIVEN a clock that reads 1000 at creation and 4000 at the stage
    const times = [1000, 4000, 4000];
    const lines: string[] = [];
    const log = new StepLog('mua-0123456789abcdef', () => times.shift()!, (line) => lines.push(line));
    // WHEN
    log.stage('snapshot', { snapshotId: 'snap-0abc', progressPercent: 40 });
    // THEN
    expect(JSON.parse(lines[0])).toEqual({ step: 'stage', buildId: 'mua-0123456789abcdef', stage: 'snapshot', at: 4000, snapshotId: 'snap-0abc', progressPercent: 40, elapsedMs: 3000 });
    const text = `1970-01-01T00:00:04.000Z\t0f1e2d3c-request\tINFO\t${lines[0]}`;
    const json = JSON.stringify({ timestamp: '1970-01-01T00:00:04.000Z', level: 'INFO', requestId: 'r', message: lines[0] });
    for (const message of [lines[0], text, json]) {
      expect(parseStageLine(message)).toMatchObject({ stage: 'snapshot', buildId: 'mua-0123456789abcdef', at: 4000, progressPercent: 40 });
    }
  });

  test('a failure reason is cut to STAGE_REASON_MAX_CHARS; step lines and other text are no stage lines', () => {
    const lines: string[] = [];
    const log = new StepLog('mua-0123456789abcdef', () => 0, (line) => lines.push(line));
    log.stage('failed', { reason: 'x'.repeat(STAGE_REASON_MAX_CHARS + 100) });
    log.step('run-instances', { instanceId: 'i-0abc' });
    expect(parseStageLine(lines[0])?.reason).toHaveLength(STAGE_REASON_MAX_CHARS);
    expect(parseStageLine(lines[1])).toBeUndefined();
    expect(parseStageLine('START RequestId: 0f1e Version: $LATEST')).toBeUndefined();
    expect(parseStageLine('{"step":"stage","stage":"no-such-stage","buildId":"mua-0123456789abcdef","at":1}')).toBeUndefined();
  });
});

describe('progressPercentOf', () => {
  test.each([['40%', 40], ['100%', 100], ['', undefined], [undefined, undefined], ['pending', undefined]])('%s -> %s', (progress, percent) => {
    expect(progressPercentOf(progress)).toBe(percent);
  });
});
