import { StepLog } from '../../../lib/unikernel-ami/handler/log';

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
