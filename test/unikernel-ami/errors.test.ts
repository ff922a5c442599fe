import { App } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { BuildStrategy, MirageUnikernelAmi, PvGrubKernel, UnikernelKernel } from '../../lib';
import { checkInput, validationError, ValidationError } from '../../lib/unikernel-ami/errors';
import { kernelFixture, newStack, PV_X86_64_KERNEL } from '../fixtures/construct';

/** What `fn` throws; fails the test when it throws nothing. */
function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, but nothing was thrown');
}

/** Node prints `stack` for an uncaught error; a frame line starts with "    at ". */
const STACK_FRAME = /^\s+at /m;

describe('a validation error', () => {
  const originalDebug = process.env.CDK_DEBUG;
  afterEach(() => {
    if (originalDebug === undefined) {
      delete process.env.CDK_DEBUG;
    } else {
      process.env.CDK_DEBUG = originalDebug;
    }
  });

  test('names the construct path in its message and prints as one line without stack frames', () => {
    delete process.env.CDK_DEBUG;
    const scope = new Construct(newStack(), 'Hello');
    const err = validationError(scope, 'volumeSize is 0 GiB.');
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe('TestStack/Hello: volumeSize is 0 GiB.');
    expect(err.constructPath).toBe('TestStack/Hello');
    expect(err.stack).toBe('ValidationError at TestStack/Hello: volumeSize is 0 GiB.');
    // Node's report of an uncaught error appends own enumerable properties as `{ ... }`: there are none.
    expect(Object.keys(err)).toEqual([]);
  });

  test('without a construct (a factory method) is the message alone', () => {
    delete process.env.CDK_DEBUG;
    const err = validationError(undefined, 'PvGrubKernel.fromKernelId was given "x".');
    expect(err.message).toBe('PvGrubKernel.fromKernelId was given "x".');
    expect(err.constructPath).toBeUndefined();
    expect(err.stack).toBe('ValidationError: PvGrubKernel.fromKernelId was given "x".');
  });

  test('against the app itself (the empty path) is the message alone', () => {
    const err = validationError(new App(), 'Unknown build strategy.');
    expect(err.message).toBe('Unknown build strategy.');
    expect(err.constructPath).toBeUndefined();
  });

  test('keeps its stack frames with CDK_DEBUG=true', () => {
    process.env.CDK_DEBUG = 'true';
    const err = validationError(new Construct(newStack(), 'Hello'), 'bad');
    expect(err.stack).toMatch(STACK_FRAME);
    expect(err.stack).toContain('TestStack/Hello: bad');
  });

  test('checkInput reports what a check throws against the construct, with context', () => {
    const scope = new Construct(newStack(), 'Hello');
    expect(checkInput(scope, () => 42)).toBe(42);
    const err = thrownBy(() => checkInput(scope, () => { throw new RangeError('too big'); }, (reason) => `size: ${reason}`));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe('TestStack/Hello: size: too big');
  });
});

describe('the construct reports bad input as validation errors naming the construct', () => {
  beforeEach(() => {
    delete process.env.CDK_DEBUG;
  });

  test.each<[string, (scope: Construct) => unknown, RegExp]>([
    ['a missing kernel file', (scope) => new MirageUnikernelAmi(scope, 'Hello', { kernel: UnikernelKernel.fromFile('/nonexistent/hello.xen'), name: 'hello' }), /Cannot read the unikernel kernel file \/nonexistent\/hello.xen/],
    ['a PVH-only kernel', (scope) => new MirageUnikernelAmi(scope, 'Hello', { kernel: UnikernelKernel.fromFile(kernelFixture('pvh-only.elf')), name: 'hello' }), /cannot be booted by AWS PV-GRUB/],
    ['a bad name (checked by the disk-image module)', (scope) => new MirageUnikernelAmi(scope, 'Hello', { kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: 'hello world' }), /Invalid unikernel name/],
    ['a current-generation instance type', (scope) => new MirageUnikernelAmi(scope, 'Hello', {
      kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: 'hello', instances: { instanceType: new ec2.InstanceType('m5.large') },
    }), /cannot run a paravirtual AMI/],
  ])('%s', (_label, create, message) => {
    const stack = newStack();
    const err = thrownBy(() => create(stack));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/^TestStack\/Hello: /);
    expect(err.message).toMatch(message);
    expect(err.stack).not.toMatch(STACK_FRAME);
  });

  test('a region without PV-GRUB', () => {
    const err = thrownBy(() => new MirageUnikernelAmi(newStack({ region: 'eu-north-1' }), 'Hello', { kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: 'hello' }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/^TestStack\/Hello: Region eu-north-1 has no PV-GRUB kernel/);
  });

  test.each<[string, () => unknown]>([
    ['PvGrubKernel.fromKernelId', () => PvGrubKernel.fromKernelId('ami-12345678')],
    ['BuildStrategy.helperInstance', () => BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType('t4g.micro') })],
  ])('%s, called before any construct exists, still throws one line', (_label, create) => {
    const err = thrownBy(create);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.stack).not.toMatch(STACK_FRAME);
  });
});
