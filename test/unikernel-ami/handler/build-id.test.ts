import { buildIdOf, isBuildId } from '../../../lib/unikernel-ami/handler/build-id';
import { createEvent, LOGICAL_ID, STACK_ID } from '../../fixtures/custom-resource';

describe('buildIdOf', () => {
  test('is mua- and 16 hex digits, the same for a retried request', () => {
    const id = buildIdOf(createEvent(undefined, 'request-1'));
    expect(id).toMatch(/^mua-[0-9a-f]{16}$/);
    expect(buildIdOf(createEvent(undefined, 'request-1'))).toBe(id);
  });

  test.each([
    ['request', { StackId: STACK_ID, LogicalResourceId: LOGICAL_ID, RequestId: 'request-2' }],
    ['resource', { StackId: STACK_ID, LogicalResourceId: 'OtherAmi', RequestId: 'request-1' }],
    ['stack', { StackId: STACK_ID.replace('UnikernelStack', 'OtherStack'), LogicalResourceId: LOGICAL_ID, RequestId: 'request-1' }],
  ])('differs for another %s', (_what, request) => {
    expect(buildIdOf(request)).not.toBe(buildIdOf(createEvent(undefined, 'request-1')));
  });

  test('the parts are separated, so moving characters between them changes the id', () => {
    const a = buildIdOf({ StackId: 's', LogicalResourceId: 'ab', RequestId: 'c' });
    const b = buildIdOf({ StackId: 's', LogicalResourceId: 'a', RequestId: 'bc' });
    expect(a).not.toBe(b);
  });
});

describe('isBuildId', () => {
  test.each([
    ['mua-0123456789abcdef', true],
    ['mua-0123456789ABCDEF', false],
    ['mua-0123456789abcde', false],
    ['AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', false],
    ['', false],
    [undefined, false],
  ])('%p -> %p', (id, expected) => {
    expect(isBuildId(id)).toBe(expected);
  });
});
