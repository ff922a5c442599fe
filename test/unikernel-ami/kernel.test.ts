import { copyFileSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { gzipSync } from 'zlib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { KernelArchitecture, MirageUnikernelAmi, UnikernelKernel } from '../../lib';
import * as inspection from '../../lib/kernel-inspection';
import { kernelFixture, newStack, PV_I386_KERNEL, PV_X86_64_KERNEL } from '../fixtures/construct';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kernel-bind-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  jest.restoreAllMocks();
});

describe('UnikernelKernel.fromFile', () => {
  test('a file used by many unikernels is inspected once, and read only as far as inspection needs', () => {
    // GIVEN
    const file = join(dir, 'hello.xen');
    copyFileSync(PV_X86_64_KERNEL, file);
    const inspect = jest.spyOn(inspection, 'inspectKernelFileSync');
    const stack = newStack();

    // WHEN
    const amis = Array.from({ length: 5 }, (_, i) => new MirageUnikernelAmi(stack, `Hello${i}`, { kernel: UnikernelKernel.fromFile(file), name: `hello${i}` }));

    // THEN
    expect(inspect).toHaveBeenCalledTimes(1);
    expect(amis.map((ami) => ami.architecture)).toEqual(Array(5).fill(KernelArchitecture.X86_64));
  });

  test('a file that changed since it was inspected is inspected again', () => {
    // GIVEN a kernel inspected once, then replaced by a kernel of the other architecture
    const file = join(dir, 'hello.xen');
    copyFileSync(PV_X86_64_KERNEL, file);
    const stack = newStack();
    const first = new MirageUnikernelAmi(stack, 'First', { kernel: UnikernelKernel.fromFile(file), name: 'first' });
    copyFileSync(PV_I386_KERNEL, file);
    utimesSync(file, new Date(), new Date(Date.now() + 5000));

    // WHEN
    const second = new MirageUnikernelAmi(stack, 'Second', { kernel: UnikernelKernel.fromFile(file), name: 'second' });

    // THEN
    expect([first.architecture, second.architecture]).toEqual([KernelArchitecture.X86_64, KernelArchitecture.I386]);
  });

  test('the warnings of a kernel inspected once are given to every unikernel that uses it', () => {
    const stack = newStack();
    const file = kernelFixture('pv-x86_64-unloaded-note.elf');
    new MirageUnikernelAmi(stack, 'One', { kernel: UnikernelKernel.fromFile(file), name: 'one' });
    new MirageUnikernelAmi(stack, 'Two', { kernel: UnikernelKernel.fromFile(file), name: 'two' });

    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('outside the PT_NOTE segments'));
    expect(warnings.map((warning) => warning.id)).toEqual(['/TestStack/One', '/TestStack/Two']);
  });

  test('a gzip kernel missing its last bytes stops the synth', () => {
    const gz = gzipSync(readFileSync(PV_X86_64_KERNEL));
    const file = join(dir, 'hello.xen.gz');
    writeFileSync(file, gz.subarray(0, gz.length - 2));
    expect(() => new MirageUnikernelAmi(newStack(), 'Hello', { kernel: UnikernelKernel.fromFile(file), name: 'hello' }))
      .toThrow(/cannot be booted by AWS PV-GRUB: The kernel file starts with the gzip magic, but the gzip data is corrupt or truncated/);
  });
});

describe('UnikernelKernel.fromBucket', () => {
  const WITHOUT_VERSION = Match.stringLikeRegexp('names no objectVersion: overwriting that object never rebuilds the AMI.*Give fromBucket the object\'s version');

  test('without objectVersion: a synth warning on the unikernel that overwriting the object never rebuilds the AMI', () => {
    const stack = newStack();
    const bucket = s3.Bucket.fromBucketName(stack, 'Kernels', 'my-kernels');
    new MirageUnikernelAmi(stack, 'Hello', { kernel: UnikernelKernel.fromBucket(bucket, 'hello.xen'), name: 'hello' });
    const warnings = Annotations.fromStack(stack).findWarning('*', WITHOUT_VERSION);
    expect(warnings.map((warning) => warning.id)).toEqual(['/TestStack/Hello']);
    expect(JSON.stringify(warnings[0].entry.data)).toContain('TestStack/Kernels, \\"hello.xen\\"');
  });

  test('with objectVersion: no such warning', () => {
    const stack = newStack();
    const bucket = s3.Bucket.fromBucketName(stack, 'Kernels', 'my-kernels');
    new MirageUnikernelAmi(stack, 'Hello', { kernel: UnikernelKernel.fromBucket(bucket, 'hello.xen', 'v3'), name: 'hello' });
    Annotations.fromStack(stack).hasNoWarning('*', WITHOUT_VERSION);
  });
});
