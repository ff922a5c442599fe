/**
 * One AMI per region: an AMI with a kernel id is regional, and every region with PV-GRUB has its own
 * PV-GRUB kernel (AKI). The CDK way is a stack per region, each building its own AMI from the same
 * kernel. CopyImage has no kernel-id parameter, and whether it maps the AKI to the target region's is
 * undocumented, so the construct builds in each region rather than copying (docs/regions.md).
 *
 *     npx cdk synth --app "npx tsx examples/regions/app.ts"
 *
 * us-gov-west-1 also has PV-GRUB, but it is another partition with accounts of its own: add it in
 * an app for that partition.
 */
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { BuildStrategy, MirageUnikernelAmi, UnikernelKernel } from '../../lib';
import { PV_GRUB_REGIONS } from '../../lib/pv-grub';

/** The commercial regions with PV-GRUB (the AWS partition). */
export const COMMERCIAL_PV_GRUB_REGIONS = PV_GRUB_REGIONS.filter((region) => !region.startsWith('us-gov-'));

/** Adds one stack per commercial PV-GRUB region to `app`, each building the kernel's AMI there. */
export function addRegionalStacks(app: App, kernelFile: string, account?: string): Stack[] {
  return COMMERCIAL_PV_GRUB_REGIONS.map((region) => {
    const stack = new Stack(app, `Hello-${region}`, { env: { account, region } });
    new MirageUnikernelAmi(stack, 'Hello', {
      kernel: UnikernelKernel.fromFile(kernelFile),
      name: 'hello',
      buildStrategy: BuildStrategy.ebsDirect(),
    });
    return stack;
  });
}

if (require.main === module) {
  const app = new App();
  addRegionalStacks(app, path.join(__dirname, '..', 'hello', 'hello.xen'), process.env.CDK_DEFAULT_ACCOUNT);
  app.synth();
}
