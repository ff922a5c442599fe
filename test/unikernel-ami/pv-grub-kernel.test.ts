import { Aws } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { KernelArchitecture, MirageUnikernelAmi, PvGrubKernel, UnikernelKernel } from '../../lib';
import { newStack, PV_I386_KERNEL, PV_X86_64_KERNEL } from '../fixtures/construct';
import { DOCUMENTED_PV_GRUB_AKIS as DOCUMENTED_AKIS } from '../fixtures/documented-akis';

const CUSTOM_RESOURCE = 'Custom::MirageUnikernelAmi';


function unikernel(stack: ReturnType<typeof newStack>, id = 'Hello', kernelFile = PV_X86_64_KERNEL, pvGrubKernel?: PvGrubKernel) {
  return new MirageUnikernelAmi(stack, id, { kernel: UnikernelKernel.fromFile(kernelFile), name: id.toLowerCase(), pvGrubKernel });
}

describe('PvGrubKernel.forRegion() in a stack with a concrete region', () => {
  test.each(Object.entries(DOCUMENTED_AKIS))('%s gets its AKI for each architecture, with no mapping or rule', (region, akis) => {
    const stack = newStack({ region });
    expect(PvGrubKernel.forRegion().bind(stack, KernelArchitecture.X86_64)).toBe(akis.x86_64);
    expect(PvGrubKernel.forRegion().bind(stack, KernelArchitecture.I386)).toBe(akis.i386);
    unikernel(stack);
    const template = Template.fromStack(stack);
    template.hasResourceProperties(CUSTOM_RESOURCE, { KernelId: akis.x86_64 });
    expect(template.toJSON().Mappings).toBeUndefined();
    expect(Object.keys(template.toJSON().Rules ?? {})).not.toContain('MirageUnikernelAmiPvGrubRegion');
  });

  test.each(['eu-north-1', 'ap-south-1', 'cn-north-1'])('%s, which has no PV-GRUB, is refused with the list of regions that have it', (region) => {
    expect(() => unikernel(newStack({ region }))).toThrow(
      new RegExp(`Region ${region} has no PV-GRUB kernel.*Deploy the stack to one of ap-northeast-1, .*us-east-1, .*us-west-2, or give pvGrubKernel: PvGrubKernel.fromKernelId`),
    );
  });
});

describe('PvGrubKernel.forRegion() in an environment-agnostic stack', () => {
  test('the AKI is looked up in a region mapping at deploy time', () => {
    const stack = newStack();
    unikernel(stack);
    const x86 = stack.resolve(PvGrubKernel.forRegion().bind(stack, KernelArchitecture.X86_64));
    const i386 = stack.resolve(PvGrubKernel.forRegion().bind(stack, KernelArchitecture.I386));
    expect(x86).toEqual({ 'Fn::FindInMap': ['MirageUnikernelAmiPvGrubKernels', { Ref: 'AWS::Region' }, 'x8664'] });
    expect(i386).toEqual({ 'Fn::FindInMap': ['MirageUnikernelAmiPvGrubKernels', { Ref: 'AWS::Region' }, 'i386'] });

    // What CloudFormation's FindInMap would give in each documented region.
    const mapping = Template.fromStack(stack).toJSON().Mappings.MirageUnikernelAmiPvGrubKernels;
    for (const [region, akis] of Object.entries(DOCUMENTED_AKIS)) {
      expect(mapping[region]).toEqual({ x8664: akis.x86_64, i386: akis.i386 });
    }
    expect(Object.keys(mapping)).toHaveLength(10);
    expect(mapping['eu-north-1']).toBeUndefined();
  });

  test('a rule stops the deploy in a region without PV-GRUB', () => {
    const stack = newStack();
    unikernel(stack);
    const rule = Template.fromStack(stack).toJSON().Rules.MirageUnikernelAmiPvGrubRegion;
    expect(rule.Assertions).toHaveLength(1);
    const [regions, region] = rule.Assertions[0].Assert['Fn::Contains'];
    expect(region).toEqual(stack.resolve(Aws.REGION));
    expect(regions).toEqual(expect.arrayContaining([...Object.keys(DOCUMENTED_AKIS), 'us-gov-west-1', 'sa-east-1']));
    expect(regions).toHaveLength(10);
    expect(rule.Assertions[0].AssertDescription).toMatch(/only exists in ap-northeast-1, .*us-west-2. Deploy it to one of these regions/);
  });

  test('the custom resource gets the mapped AKI for the kernel\'s architecture', () => {
    const stack = newStack();
    unikernel(stack, 'Hello32', PV_I386_KERNEL);
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, {
      KernelId: { 'Fn::FindInMap': ['MirageUnikernelAmiPvGrubKernels', { Ref: 'AWS::Region' }, 'i386'] },
    });
  });

  test('unikernels of a stack share one mapping and one rule', () => {
    const stack = newStack();
    unikernel(stack, 'One');
    unikernel(stack, 'Two', PV_I386_KERNEL);
    const template = Template.fromStack(stack).toJSON();
    expect(Object.keys(template.Mappings)).toEqual(['MirageUnikernelAmiPvGrubKernels']);
    expect(Object.keys(template.Rules).sort()).toEqual(['CheckBootstrapVersion', 'MirageUnikernelAmiPvGrubRegion']);
  });
});

describe('PvGrubKernel.fromKernelId()', () => {
  test('a known AKI of the right architecture is used as is, without mapping or rule', () => {
    const stack = newStack();
    unikernel(stack, 'Hello', PV_X86_64_KERNEL, PvGrubKernel.fromKernelId('aki-dc9ed9af'));
    const template = Template.fromStack(stack);
    template.hasResourceProperties(CUSTOM_RESOURCE, { KernelId: 'aki-dc9ed9af' });
    expect(template.toJSON().Mappings).toBeUndefined();
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
  });

  test('an AKI this library does not know gives a warning', () => {
    const stack = newStack({ region: 'us-east-1' });
    unikernel(stack, 'Hello', PV_X86_64_KERNEL, PvGrubKernel.fromKernelId('aki-919dcaf8'));
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, { KernelId: 'aki-919dcaf8' });
    Annotations.fromStack(stack).hasWarning('/TestStack/Hello', Match.stringLikeRegexp('aki-919dcaf8 is not one of the PV-GRUB 1.05 hd0 AKIs'));
  });

  test('a known AKI of the other architecture is refused', () => {
    expect(() => unikernel(newStack(), 'Hello', PV_X86_64_KERNEL, PvGrubKernel.fromKernelId('aki-04206613')))
      .toThrow(/aki-04206613 is a PV-GRUB for i386 kernels, but the unikernel is x86_64: a 64-bit PV-GRUB cannot start a 32-bit kernel/);
    expect(() => unikernel(newStack(), 'Hello', PV_I386_KERNEL, PvGrubKernel.fromKernelId('aki-5c21674b')))
      .toThrow(/aki-5c21674b is a PV-GRUB for x86_64 kernels, but the unikernel is i386/);
  });

  test('a known AKI of another region is refused in a stack with a concrete region', () => {
    expect(() => unikernel(newStack({ region: 'us-east-1' }), 'Hello', PV_X86_64_KERNEL, PvGrubKernel.fromKernelId('aki-dc9ed9af')))
      .toThrow(/aki-dc9ed9af is the PV-GRUB AKI of eu-west-1, but the stack deploys to us-east-1/);
  });

  test.each(['ami-12345678', 'aki-xyz', ''])('%j is not an AKI id and is refused', (kernelId) => {
    expect(() => PvGrubKernel.fromKernelId(kernelId)).toThrow(/is not a kernel image id. Give a PV-GRUB AKI id such as aki-5c21674b/);
  });
});
