#!/usr/bin/env node
/**
 * Example app: the hello unikernel (examples/hello/hello.xen) as a paravirtual AMI, and one t1.micro
 * running it. Environment-agnostic by default; context picks another region, kernel or build strategy:
 *
 *   npx cdk synth                                  # any region with PV-GRUB, checked at deploy time
 *   npx cdk deploy -c region=eu-west-1             # a concrete region (its AKI is in the template)
 *   npx cdk deploy -c kernel=path/to/unikernel.xen # another Xen PV kernel
 *   npx cdk deploy -c strategy=direct              # EBS direct APIs instead of a helper instance
 */
import * as path from 'path';
import { App, CfnOutput, Stack } from 'aws-cdk-lib';
import { BuildStrategy, MirageUnikernelAmi, UnikernelKernel } from '../lib';
import { validationError } from '../lib/unikernel-ami/errors';

const STRATEGIES: { [name: string]: () => BuildStrategy } = {
  helper: () => BuildStrategy.helperInstance(),
  direct: () => BuildStrategy.ebsDirect(),
};

const app = new App();
const region: string | undefined = app.node.tryGetContext('region');
const kernelFile: string = app.node.tryGetContext('kernel') ?? path.join(__dirname, '..', 'examples', 'hello', 'hello.xen');
const strategyName: string = app.node.tryGetContext('strategy') ?? 'helper';
const strategy = STRATEGIES[strategyName];
if (strategy === undefined) {
  throw validationError(app, `Unknown build strategy -c strategy=${strategyName}: use ${Object.keys(STRATEGIES).join(' or ')}.`);
}

const stack = new Stack(app, 'MirageHelloStack', {
  env: region === undefined ? undefined : { region },
  description: 'MirageOS hello unikernel as a paravirtual AMI booted by PV-GRUB, and one instance running it',
});
const hello = new MirageUnikernelAmi(stack, 'Hello', {
  kernel: UnikernelKernel.fromFile(kernelFile),
  name: 'hello',
  buildStrategy: strategy(),
  instances: { count: 1 },
});

new CfnOutput(stack, 'ImageId', { value: hello.imageId, description: 'The paravirtual AMI' });
new CfnOutput(stack, 'KernelId', { value: hello.kernelId, description: 'The PV-GRUB AKI that boots it' });
new CfnOutput(stack, 'InstanceId', {
  value: hello.instances[0].instanceId,
  description: 'Read its console with: npx mirage-unikernel-ami console <InstanceId> --region <region>',
});
