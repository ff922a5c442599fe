/**
 * Integration test: deploys the hello unikernel as a paravirtual AMI and checks with EC2 itself that
 * the AMI is paravirtual, boots from the region's PV-GRUB AKI and uses the snapshot the build wrote.
 *
 * The stack is environment-agnostic, like most integ tests, so the AKI comes from the construct's
 * region mapping at deploy time; the expected AKI comes from a second mapping built from the AKIs as
 * documented (test/fixtures/documented-akis.ts), so the assertion trusts neither the library's table
 * nor the handler's KernelId output.
 *
 * The snapshot (test/integ.hello.ts.snapshot) is compared, without deploying, by `npm run integ`
 * (part of `npm test`); `npm run integ:update` rewrites it after a change.
 */
import * as path from 'path';
import { App, Aws, CfnMapping, Stack } from 'aws-cdk-lib';
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { MirageUnikernelAmi, UnikernelKernel } from '../lib';
import { PV_ROOT_DEVICE_NAME } from '../lib/pv-grub';
import { DOCUMENTED_PV_GRUB_AKIS } from './fixtures/documented-akis';

const app = new App();
const stack = new Stack(app, 'MirageUnikernelAmiIntegHello');
const hello = new MirageUnikernelAmi(stack, 'Hello', {
  kernel: UnikernelKernel.fromFile(path.join(__dirname, '..', 'examples', 'hello', 'hello.xen')),
  name: 'hello',
  kernelArgs: 'integ-test',
});

const integ = new IntegTest(app, 'HelloUnikernelAmi', {
  testCases: [stack],
  // PV-GRUB exists only in some regions; us-east-1 is one.
  regions: ['us-east-1'],
  // A changed handler bundle or kernel changes only asset hashes: make those count as a change.
  diffAssets: true,
  // No deploy of the previous snapshot before this one; it also keeps our 4 MB handler bundle out
  // of the committed snapshot (the templates still name it by hash).
  stackUpdateWorkflow: false,
});

// The assertions live in their own stack (inside the IntegTest); a mapping cannot be used across stacks.
const assertionStack = integ.node.findAll().find((construct): construct is Stack => Stack.isStack(construct))!;
const expectedAkis: { [region: string]: { [key: string]: string } } = {};
for (const [region, akis] of Object.entries(DOCUMENTED_PV_GRUB_AKIS)) {
  expectedAkis[region] = { aki: akis.x86_64 };
}
const expectedAki = new CfnMapping(assertionStack, 'ExpectedPvGrubKernel', { mapping: expectedAkis }).findInMap(Aws.REGION, 'aki');

integ.assertions
  .awsApiCall('EC2', 'describeImages', { ImageIds: [hello.imageId] })
  .expect(ExpectedResult.objectLike({
    Images: Match.arrayWith([Match.objectLike({
      ImageId: hello.imageId,
      State: 'available',
      VirtualizationType: 'paravirtual',
      KernelId: expectedAki,
      Architecture: 'x86_64',
      RootDeviceName: PV_ROOT_DEVICE_NAME,
      BlockDeviceMappings: Match.arrayWith([Match.objectLike({
        DeviceName: PV_ROOT_DEVICE_NAME,
        Ebs: Match.objectLike({ SnapshotId: hello.snapshotId }),
      })]),
    })]),
  }));
