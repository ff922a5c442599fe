/**
 * An AMI distributed as Packer or EC2 Image Builder would distribute it (docs/distribution.md): a
 * name and description of its own, shared with another account and with an organization, encrypted
 * with a customer managed key whose key policy lets them launch it, deprecated after a year,
 * protected from deregistration, its id published in an SSM parameter, and a role of this account
 * allowed to launch it.
 *
 *     npx cdk synth --app "npx tsx examples/distribution/app.ts"
 */
import * as path from 'path';
import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { BuildStrategy, MirageUnikernelAmi, UnikernelKernel } from '../../lib';

/** The account and the organization the AMI is shared with (replace them with yours). */
export const SHARED_ACCOUNT = '111122223333';
export const SHARED_ORGANIZATION_ID = 'o-a1b2c3d4e5';
export const SHARED_ORGANIZATION_ARN = `arn:aws:organizations::444455556666:organization/${SHARED_ORGANIZATION_ID}`;

/** What another account needs of the key to launch an AMI encrypted with it (docs/distribution.md; the list is not verified action by action). */
export const LAUNCH_KEY_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'];

/** Adds the stack to `app`. */
export function addDistributionStack(app: App, kernelFile: string, env?: { account?: string; region?: string }): Stack {
  const stack = new Stack(app, 'DistributedHello', { env });

  // A shared AMI cannot be encrypted with the AWS managed key: this key's policy lets the account and
  // the organization use it, through EC2 only, as launching needs.
  const key = new kms.Key(stack, 'AmiKey', { enableKeyRotation: true, description: 'Encrypts the shared hello AMI' });
  const viaEc2 = { 'kms:ViaService': `ec2.${stack.region}.${stack.urlSuffix}` };
  // One pair of statements per principal: the organization's carries its own condition (aws:PrincipalOrgID).
  const sharedWith = { Account: new iam.AccountPrincipal(SHARED_ACCOUNT), Organization: new iam.OrganizationPrincipal(SHARED_ORGANIZATION_ID) };
  for (const [who, principal] of Object.entries(sharedWith)) {
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: `LaunchTheSharedAmi${who}`,
      principals: [principal],
      actions: LAUNCH_KEY_ACTIONS,
      resources: ['*'],
      conditions: { StringEquals: viaEc2 },
    }));
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: `LetEc2UseTheKeyForTheirVolumes${who}`,
      principals: [principal],
      actions: ['kms:CreateGrant'],
      resources: ['*'],
      conditions: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }));
  }

  const hello = new MirageUnikernelAmi(stack, 'Hello', {
    kernel: UnikernelKernel.fromFile(kernelFile),
    name: 'hello',
    buildStrategy: BuildStrategy.ebsDirect(),
    encryptionKey: key,
    imageName: 'hello-unikernel',                     // the AMI is named hello-unikernel-mua-<16 hex digits>
    imageDescription: 'MirageOS hello, booted by PV-GRUB',
    sharing: {
      accounts: [SHARED_ACCOUNT],
      organizationArns: [SHARED_ORGANIZATION_ARN],
    },
    deprecateAfter: Duration.days(365),
    deregistrationProtection: true,                   // a Delete turns it off before deregistering
    removalPolicy: RemovalPolicy.DESTROY,
    imageIdParameterName: '/unikernels/hello/image-id',
  });

  // A role of this account that may launch the AMI (its instances, subnets and so on are its own to allow).
  const launcher = new iam.Role(stack, 'Launcher', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  hello.grantLaunch(launcher);
  return stack;
}

if (require.main === module) {
  const app = new App();
  addDistributionStack(app, path.join(__dirname, '..', 'hello', 'hello.xen'), { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION });
  app.synth();
}
