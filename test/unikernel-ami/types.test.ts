import { OPERATION_TIMING } from '../../lib/unikernel-ami/types';

describe('the time budget of one custom-resource operation', () => {
  const t = OPERATION_TIMING;

  test('onEvent, the waiter and its last isComplete fit in the ServiceTimeout, which CloudFormation caps at 3600 s', () => {
    expect(t.serviceTimeoutSeconds).toBeLessThanOrEqual(3600);
    expect(t.onEventSeconds + t.waiterTotalSeconds + t.isCompleteSeconds).toBeLessThanOrEqual(t.serviceTimeoutSeconds);
  });

  test('the handler\'s deadline leaves one more poll and a whole isComplete before the waiter gives up', () => {
    // The deadline counts from the start of onEvent, the waiter's total from its end: the worst
    // case is an onEvent that returned at once.
    expect(t.handlerDeadlineSeconds + t.queryIntervalSeconds + t.isCompleteSeconds).toBeLessThanOrEqual(t.waiterTotalSeconds);
  });

  test('an isComplete that looks again within its invocation stays well inside its Lambda timeout, and the waiter\'s attempts divide its total', () => {
    expect(t.isCompletePollStepSeconds).toBeGreaterThan(0);
    expect(t.isCompletePollWindowSeconds).toBeGreaterThanOrEqual(t.isCompletePollStepSeconds);
    // Half the Lambda timeout at most: the rest is for a failed round's cleanup (handler/index.ts).
    expect(t.isCompletePollWindowSeconds).toBeLessThanOrEqual(t.isCompleteSeconds / 2);
    expect(t.waiterTotalSeconds % t.queryIntervalSeconds).toBe(0);
    expect(t.isCompletePollBuildSeconds).toBeLessThan(t.handlerDeadlineSeconds);
  });
});
