/**
 * The distribution example of docs/distribution.md (examples/distribution/app.ts) synthesizes: its
 * AMI carries every distribution property, its key policy lets the account and the organization it
 * is shared with launch it (through EC2 only), its id is published in an SSM parameter, and cdk-nag
 * finds nothing on it.
 */
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as nag from 'cdk-nag';
import { addDistributionStack, LAUNCH_KEY_ACTIONS, SHARED_ACCOUNT, SHARED_ORGANIZATION_ARN, SHARED_ORGANIZATION_ID } from '../../examples/distribution/app';

const HELLO = path.join(__dirname, '..', '..', 'examples', 'hello', 'hello.xen');

function synthesized() {
  const stack = addDistributionStack(new App(), HELLO, { account: '123456789012', region: 'eu-west-1' });
  return { stack, template: Template.fromStack(stack) };
}

test('the AMI is named, described, shared, deprecated, protected and published', () => {
  const { template } = synthesized();
  template.hasResourceProperties('Custom::MirageUnikernelAmi', {
    ImageName: 'hello-unikernel',
    ImageDescription: 'MirageOS hello, booted by PV-GRUB',
    Sharing: { Accounts: [SHARED_ACCOUNT], OrganizationArns: [SHARED_ORGANIZATION_ARN] },
    DeprecateAfterSeconds: String(365 * 86400),
    DeregistrationProtection: 'on',
    KmsKeyArn: Match.anyValue(),
  });
  template.hasResourceProperties('AWS::SSM::Parameter', { Name: '/unikernels/hello/image-id', DataType: 'aws:ec2:image' });
});

test('the key policy lets the account and the organization launch it through EC2 of the region', () => {
  const { template } = synthesized();
  const viaEc2 = { 'kms:ViaService': { 'Fn::Join': ['', ['ec2.eu-west-1.', { Ref: 'AWS::URLSuffix' }]] } };
  const account = { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${SHARED_ACCOUNT}:root`]] } };
  template.hasResourceProperties('AWS::KMS::Key', {
    KeyPolicy: {
      Statement: Match.arrayWith([
        { Sid: 'LaunchTheSharedAmiAccount', Effect: 'Allow', Principal: account, Action: LAUNCH_KEY_ACTIONS, Resource: '*', Condition: { StringEquals: viaEc2 } },
        {
          Sid: 'LetEc2UseTheKeyForTheirVolumesAccount', Effect: 'Allow', Principal: account, Action: 'kms:CreateGrant', Resource: '*',
          Condition: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
        },
        {
          Sid: 'LaunchTheSharedAmiOrganization', Effect: 'Allow', Principal: { AWS: '*' }, Action: LAUNCH_KEY_ACTIONS, Resource: '*',
          Condition: { StringEquals: { ...viaEc2, 'aws:PrincipalOrgID': SHARED_ORGANIZATION_ID } },
        },
      ]),
    },
  });
});

test('cdk-nag finds nothing unacknowledged', () => {
  const { stack } = synthesized();
  const findings = new nag.AwsSolutionsChecks().validateScope(stack).violations
    .flatMap((violation) => violation.violatingResources.map((resource) => `${violation.ruleName} on ${resource.constructPath}`));
  expect(findings).toEqual([]);
});
