/**
 * The stack-per-region app of docs/regions.md (examples/regions/app.ts) synthesizes, and each
 * region's AMI gets that region's PV-GRUB kernel as the EC2 user guide lists it.
 */
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { addRegionalStacks, COMMERCIAL_PV_GRUB_REGIONS } from '../../examples/regions/app';
import { DOCUMENTED_PV_GRUB_AKIS } from '../fixtures/documented-akis';

const HELLO = path.join(__dirname, '..', '..', 'examples', 'hello', 'hello.xen');

test('one stack per commercial PV-GRUB region, us-gov-west-1 (another partition) left out', () => {
  const documented = Object.keys(DOCUMENTED_PV_GRUB_AKIS).filter((region) => region !== 'us-gov-west-1').sort();
  expect([...COMMERCIAL_PV_GRUB_REGIONS].sort()).toEqual(documented);
});

test('every regional stack synthesizes, its AMI booted by that region\'s x86_64 PV-GRUB AKI', () => {
  const app = new App();
  const stacks = addRegionalStacks(app, HELLO, '123456789012');
  expect(stacks.map((stack) => stack.region)).toEqual([...COMMERCIAL_PV_GRUB_REGIONS]);
  for (const stack of stacks) {
    const amis = Template.fromStack(stack).findResources('Custom::MirageUnikernelAmi');
    const kernelIds = Object.values(amis).map((resource) => resource.Properties.KernelId);
    expect({ region: stack.region, kernelIds }).toEqual({ region: stack.region, kernelIds: [DOCUMENTED_PV_GRUB_AKIS[stack.region].x86_64] });
  }
});
