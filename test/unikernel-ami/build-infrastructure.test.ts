import { CfnParameter, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BuildStrategy, MirageUnikernelAmi, MirageUnikernelAmiProps, UnikernelKernel } from '../../lib';
import {
  actionsOf,
  allowedActions,
  handlerStatements,
  newStack,
  PV_X86_64_KERNEL,
  resourceText,
  statementsAllowing,
  TemplateStatement,
} from '../fixtures/construct';

const CUSTOM_RESOURCE = 'Custom::MirageUnikernelAmi';
const MANAGED = 'mirage-unikernel-ami:managed';
const REQUEST_TAG_MANAGED = { StringEquals: { [`aws:RequestTag/${MANAGED}`]: 'true' } };
const RESOURCE_TAG_MANAGED = { StringEquals: { [`aws:ResourceTag/${MANAGED}`]: 'true' } };

/** The actions that take no resource-level permission, so they may (and must) use Resource '*'. */
const UNSCOPED_ACTIONS = [
  'ec2:DescribeImages', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeSubnets', 'ec2:DescribeVolumes',
  'ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'ssm:ListCommandInvocations',
];

function addUnikernel(stack: Stack, id: string, overrides: Partial<MirageUnikernelAmiProps> = {}): MirageUnikernelAmi {
  return new MirageUnikernelAmi(stack, id, { kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: id.toLowerCase(), ...overrides });
}

/** The one statement allowing `action` on resources whose ARN text contains `resource`. */
function statementFor(statements: TemplateStatement[], action: string, resource: string): TemplateStatement {
  const found = statementsAllowing(statements, action).filter((statement) => resourceText(statement).includes(resource));
  expect(found).toHaveLength(1);
  return found[0];
}

function expectCommonHandlerRules(statements: TemplateStatement[]) {
  for (const statement of statements) {
    expect(statement.Effect).toBe('Allow');
    for (const action of actionsOf(statement)) {
      expect(action).not.toContain('*');
    }
    if (statement.Resource === '*') {
      expect(UNSCOPED_ACTIONS).toEqual(expect.arrayContaining(actionsOf(statement)));
    }
  }
  // The new AMI must be tagged as ours, and only our snapshots may back it.
  expect(statementFor(statements, 'ec2:RegisterImage', '::image/*').Condition).toEqual(REQUEST_TAG_MANAGED);
  expect(statementFor(statements, 'ec2:RegisterImage', '::snapshot/*').Condition).toEqual(RESOURCE_TAG_MANAGED);
  const tagOnRegister = statementsAllowing(statements, 'ec2:CreateTags').filter((statement) => resourceText(statement).includes('::image/*') && statement.Condition?.StringEquals?.['ec2:CreateAction'] !== undefined);
  expect(tagOnRegister).toHaveLength(1);
  expect(tagOnRegister[0].Condition).toEqual({ StringEquals: { 'ec2:CreateAction': 'RegisterImage' } });
  for (const action of ['ec2:DeregisterImage', 'ec2:DeleteSnapshot', 'ec2:DeleteTags']) {
    for (const resource of ['::image/*', '::snapshot/*']) {
      expect(statementFor(statements, action, resource).Condition).toEqual(RESOURCE_TAG_MANAGED);
    }
  }
}

describe('the shared provider', () => {
  test('one provider serves every unikernel of the stack', () => {
    const stack = newStack();
    addUnikernel(stack, 'One');
    addUnikernel(stack, 'Two');
    const template = Template.fromStack(stack);
    template.resourceCountIs(CUSTOM_RESOURCE, 2);
    const tokens = Object.values(template.findResources(CUSTOM_RESOURCE)).map((resource) => JSON.stringify(resource.Properties.ServiceToken));
    expect(new Set(tokens).size).toBe(1);
    expect(Object.keys(template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'index.onEvent' } }))).toHaveLength(1);
    expect(Object.keys(template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'index.isComplete' } }))).toHaveLength(1);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.resourceCountIs('AWS::EC2::VPC', 1);
  });

  test('onEvent and isComplete run the bundled handler with one role, enough memory and time', () => {
    const stack = newStack();
    addUnikernel(stack, 'Hello');
    const template = Template.fromStack(stack);
    const role = { 'Fn::GetAtt': [Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHandlerRole'), 'Arn'] };
    const logGroup = { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHandlerLogs') };
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.onEvent', Runtime: 'nodejs22.x', MemorySize: 512, Timeout: 900, Role: role, LoggingConfig: { LogGroup: logGroup },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.isComplete', Runtime: 'nodejs22.x', MemorySize: 512, Timeout: 300, Role: role, LoggingConfig: { LogGroup: logGroup },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    const logWrite = statementsAllowing(handlerStatements(template), 'logs:PutLogEvents');
    expect(logWrite).toHaveLength(1);
    expect(logWrite[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MirageUnikernelAmiBuildInfrastructureHandlerLogs/), 'Arn'] });
  });

  test('the waiter polls every 15 s for at most 55 minutes (CloudFormation waits at most one hour)', () => {
    const stack = newStack();
    addUnikernel(stack, 'Hello');
    const machine = Object.values(Template.fromStack(stack).findResources('AWS::StepFunctions::StateMachine'))[0];
    const definition = JSON.stringify(machine.Properties.DefinitionString);
    expect(definition).toContain('\\"IntervalSeconds\\":15');
    expect(definition).toContain(`\\"MaxAttempts\\":${(55 * 60) / 15}`);
  });

  test('the custom resource waits for the handler role\'s policy', () => {
    const stack = newStack();
    addUnikernel(stack, 'Hello');
    const resource = Object.values(Template.fromStack(stack).findResources(CUSTOM_RESOURCE))[0];
    expect(resource.DependsOn).toEqual(expect.arrayContaining([expect.stringMatching(/^MirageUnikernelAmiBuildInfrastructureHandlerRoleDefaultPolicy/)]));
  });
});

describe('helper-instance builds (the default)', () => {
  let stack: Stack;
  let template: Template;
  let statements: TemplateStatement[];
  beforeAll(() => {
    stack = newStack();
    addUnikernel(stack, 'Hello');
    template = Template.fromStack(stack);
    statements = handlerStatements(template);
  });

  test('the custom resource names the staging bucket and the helper\'s launch settings', () => {
    template.hasResourceProperties(CUSTOM_RESOURCE, {
      Strategy: 'helper-instance',
      StagingBucket: { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureStagingBucket') },
      Helper: {
        InstanceType: 't1.micro',
        SubnetId: { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureVpcPublicSubnet1') },
        SecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHelperSecurityGroup'), 'GroupId'] },
        InstanceProfileArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHelperInstanceProfile'), 'Arn'] },
        ImageId: { Ref: Match.stringLikeRegexp('^SsmParameterValueawsserviceamiamazonlinuxlatestal2023') },
      },
    });
    template.hasParameter('*', {
      Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>',
      Default: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64',
    });
  });

  test('the staging bucket is private, TLS-only, encrypted, emptied on delete and forgets builds after a day', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        LifecycleConfiguration: { Rules: [{ Prefix: 'builds/', ExpirationInDays: 1, Status: 'Enabled' }] },
      },
      DeletionPolicy: 'Delete',
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 1);
  });

  test('the helper may use SSM and read staged images, nothing else', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })] },
      ManagedPolicyArns: [{ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/AmazonSSMManagedInstanceCore']] }],
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHelperRole') }],
      PolicyDocument: {
        Statement: [{
          Action: 's3:GetObject',
          Effect: 'Allow',
          Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.stringLikeRegexp('StagingBucket'), 'Arn'] }, '/builds/*']] },
        }],
      },
    });
    template.hasResourceProperties('AWS::IAM::InstanceProfile', { Roles: [{ Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHelperRole') }] });
  });

  test('the helper\'s security group lets nothing in', () => {
    const groups = template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('build helper') } });
    expect(Object.keys(groups)).toHaveLength(1);
    const group = Object.values(groups)[0].Properties;
    expect(group.SecurityGroupIngress).toBeUndefined();
    expect(group.SecurityGroupEgress).toEqual([expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: '-1' })]);
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
  });

  test('the shared VPC has public subnets that give public IPs, and no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.allResourcesProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: true });
    template.resourceCountIs('AWS::EC2::InternetGateway', 1);
  });

  test('handler: no wildcard actions, Resource * only for describe/list calls, and the image statements', () => {
    expectCommonHandlerRules(statements);
  });

  test('handler: launches only tagged helpers with IMDSv2, in the helper\'s subnet and security group', () => {
    expect(statementFor(statements, 'ec2:RunInstances', ':instance/*').Condition).toEqual({
      StringEquals: { [`aws:RequestTag/${MANAGED}`]: 'true', 'ec2:MetadataHttpTokens': 'required' },
    });
    const created = statementFor(statements, 'ec2:RunInstances', ':volume/*');
    expect(resourceText(created)).toContain(':network-interface/*');
    expect(created.Condition).toEqual(REQUEST_TAG_MANAGED);
    const used = statementFor(statements, 'ec2:RunInstances', '::image/');
    expect(used.Condition).toBeUndefined();
    // Only the helper's own Amazon Linux image, from the public SSM parameter, may be launched.
    expect(resourceText(used)).toMatch(/::image\/",\{"Ref":"SsmParameterValue[^"]*al2023/i);
    expect(resourceText(used)).not.toContain('::image/*');
    expect(resourceText(used)).toMatch(/:subnet\/",\{"Ref":"MirageUnikernelAmiBuildInfrastructureVpcPublicSubnet1/);
    expect(resourceText(used)).toMatch(/:security-group\/",\{"Fn::GetAtt":\["MirageUnikernelAmiBuildInfrastructureHelperSecurityGroup/);
    expect(statementsAllowing(statements, 'ec2:RunInstances')).toHaveLength(3);
    // No key pair resource is allowed, so a launch with a key pair (SSH) would be denied.
    expect(JSON.stringify(statements)).not.toContain('key-pair');
  });

  test('handler: passes only the helper role, only to EC2', () => {
    const passRole = statementsAllowing(statements, 'iam:PassRole');
    expect(passRole).toEqual([{
      Action: 'iam:PassRole',
      Effect: 'Allow',
      Resource: { 'Fn::GetAtt': [expect.stringMatching(/^MirageUnikernelAmiBuildInfrastructureHelperRole/), 'Arn'] },
      Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
    }]);
  });

  test('handler: creates volumes and snapshots only tagged, changes only what it tagged', () => {
    expect(statementFor(statements, 'ec2:CreateVolume', ':volume/*').Condition).toEqual(REQUEST_TAG_MANAGED);
    expect(statementFor(statements, 'ec2:CreateSnapshot', ':volume/*').Condition).toEqual(RESOURCE_TAG_MANAGED);
    expect(statementFor(statements, 'ec2:CreateSnapshot', '::snapshot/*').Condition).toEqual(REQUEST_TAG_MANAGED);
    for (const action of ['ec2:AttachVolume', 'ec2:TerminateInstances', 'ec2:DeleteVolume']) {
      const statement = statementFor(statements, action, ':instance/*');
      expect(resourceText(statement)).toContain(':volume/*');
      expect(statement.Condition).toEqual(RESOURCE_TAG_MANAGED);
    }
    const tagOnCreate = statementFor(statements, 'ec2:CreateTags', ':instance/*');
    expect(tagOnCreate.Condition).toEqual({ StringEquals: { 'ec2:CreateAction': ['RunInstances', 'CreateVolume', 'CreateSnapshot'] } });
  });

  test('handler: runs commands only on tagged instances, with AWS-RunShellScript', () => {
    const document = statementFor(statements, 'ssm:SendCommand', ':document/AWS-RunShellScript');
    expect(resourceText(document)).toMatch(/:ssm:",\{"Ref":"AWS::Region"\},"::document\/AWS-RunShellScript"/);
    expect(statementFor(statements, 'ssm:SendCommand', ':instance/*').Condition).toEqual({ StringEquals: { [`ssm:resourceTag/${MANAGED}`]: 'true' } });
  });

  test('handler: stages images under builds/ of the staging bucket only', () => {
    const staging = statementsAllowing(statements, 's3:PutObject');
    expect(staging).toHaveLength(1);
    expect(staging[0].Action).toEqual(['s3:PutObject', 's3:GetObject', 's3:DeleteObject']);
    expect(staging[0].Resource).toEqual({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [expect.stringMatching(/StagingBucket/), 'Arn'] }, '/builds/*']] });
  });

  test('handler: no EBS direct permissions', () => {
    expect(allowedActions(statements).filter((action) => action.startsWith('ebs:'))).toEqual([]);
  });
});

describe('EBS direct builds', () => {
  let template: Template;
  let statements: TemplateStatement[];
  beforeAll(() => {
    const stack = newStack();
    addUnikernel(stack, 'Hello', { buildStrategy: BuildStrategy.ebsDirect() });
    template = Template.fromStack(stack);
    statements = handlerStatements(template);
  });

  test('the custom resource has no staging bucket and no helper', () => {
    template.hasResourceProperties(CUSTOM_RESOURCE, { Strategy: 'ebs-direct', StagingBucket: Match.absent(), Helper: Match.absent() });
  });

  test('no helper resources: bucket, VPC, security group, helper role, instance profile, AL2023 parameter', () => {
    for (const type of ['AWS::S3::Bucket', 'AWS::EC2::VPC', 'AWS::EC2::SecurityGroup', 'AWS::IAM::InstanceProfile', 'Custom::S3AutoDeleteObjects']) {
      template.resourceCountIs(type, 0);
    }
    expect(Object.keys(template.findResources('AWS::IAM::Role')).filter((id) => id.includes('HelperRole'))).toEqual([]);
    expect(Object.keys(template.toJSON().Parameters)).toEqual(['BootstrapVersion']);
  });

  test('the handler role is narrow: snapshot writing and image registration only', () => {
    expectCommonHandlerRules(statements);
    expect(allowedActions(statements)).toEqual([
      'ebs:CompleteSnapshot', 'ebs:PutSnapshotBlock', 'ebs:StartSnapshot',
      'ec2:CreateTags', 'ec2:DeleteSnapshot', 'ec2:DeleteTags', 'ec2:DeregisterImage', 'ec2:DescribeImages', 'ec2:DescribeSnapshots', 'ec2:RegisterImage',
      'logs:CreateLogStream', 'logs:PutLogEvents',
      's3:GetObject',
    ]);
    expect(statementFor(statements, 'ebs:StartSnapshot', '::snapshot/*').Condition).toEqual(REQUEST_TAG_MANAGED);
    const write = statementFor(statements, 'ebs:PutSnapshotBlock', '::snapshot/*');
    expect(write.Action).toEqual(['ebs:PutSnapshotBlock', 'ebs:CompleteSnapshot']);
    expect(write.Condition).toEqual(RESOURCE_TAG_MANAGED);
  });

  test('StartSnapshot may tag the snapshot it creates, with our managed tag, and no other snapshot', () => {
    const tagOnStart = statementsAllowing(statements, 'ec2:CreateTags').filter(
      (statement) => resourceText(statement).includes('::snapshot/*') && statement.Condition?.StringEquals?.['ec2:CreateAction'] !== undefined,
    );
    expect(tagOnStart).toHaveLength(1);
    expect(tagOnStart[0].Condition).toEqual({
      StringEquals: { [`aws:RequestTag/${MANAGED}`]: 'true', 'ec2:CreateAction': 'StartSnapshot' },
    });
    // Tagging an existing snapshot needs it to be ours already.
    for (const statement of statementsAllowing(statements, 'ec2:CreateTags').filter((s) => resourceText(s).includes('::snapshot/*'))) {
      expect(statement === tagOnStart[0] || JSON.stringify(statement.Condition) === JSON.stringify(RESOURCE_TAG_MANAGED)).toBe(true);
    }
  });
});

describe('a stack with both strategies', () => {
  test('the shared role holds the union, each statement once', () => {
    const stack = newStack();
    addUnikernel(stack, 'Direct', { buildStrategy: BuildStrategy.ebsDirect() });
    addUnikernel(stack, 'Helper');
    addUnikernel(stack, 'Direct2', { buildStrategy: BuildStrategy.ebsDirect() });
    const statements = handlerStatements(Template.fromStack(stack));
    expect(statementsAllowing(statements, 'ebs:StartSnapshot')).toHaveLength(1);
    expect(statementsAllowing(statements, 'ec2:RunInstances')).toHaveLength(3);
    expect(statementsAllowing(statements, 'ec2:RegisterImage')).toHaveLength(2);
  });
});

describe('helper options', () => {
  test('a given VPC, subnets and instance type are used, and RunInstances is allowed there', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 1 });
    addUnikernel(stack, 'Hello', {
      buildStrategy: BuildStrategy.helperInstance({
        vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.NANO),
      }),
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties(CUSTOM_RESOURCE, {
      Helper: Match.objectLike({ InstanceType: 't3.nano', SubnetId: { Ref: Match.stringLikeRegexp('^VpcPrivateSubnet1') } }),
    });
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: { Ref: Match.stringLikeRegexp('^Vpc') }, GroupDescription: Match.stringLikeRegexp('build helper') });
    const network = statementFor(handlerStatements(template), 'ec2:RunInstances', '::image/');
    expect(resourceText(network)).toMatch(/:subnet\/",\{"Ref":"VpcPrivateSubnet1/);
  });

  test('two unikernels in two VPCs get a security group each, and RunInstances is allowed in both', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 1 });
    addUnikernel(stack, 'Own');
    addUnikernel(stack, 'Given', { buildStrategy: BuildStrategy.helperInstance({ vpc }) });
    const template = Template.fromStack(stack);
    expect(Object.keys(template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('build helper') } }))).toHaveLength(2);
    const network = resourceText(statementFor(handlerStatements(template), 'ec2:RunInstances', '::image/'));
    expect(network.match(/:subnet\//g)).toHaveLength(2);
    expect(network.match(/:security-group\//g)).toHaveLength(2);
  });

  test('an Arm (Graviton) helper instance type is refused at synth time; a token is let through', () => {
    expect(() => BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType('t4g.micro') })).toThrow(
      /instanceType: 't4g.micro' \}\) is an Arm \(Graviton\) type, but the helper runs the x86_64 Amazon Linux 2023 image/,
    );
    expect(() => BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType('m1.small') })).not.toThrow();
    const stack = newStack();
    const fromParameter = new ec2.InstanceType(new CfnParameter(stack, 'HelperType').valueAsString);
    expect(() => BuildStrategy.helperInstance({ instanceType: fromParameter })).not.toThrow();
  });

  test('a selection that matches no subnet is refused', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC }] });
    expect(() => addUnikernel(stack, 'Hello', {
      buildStrategy: BuildStrategy.helperInstance({ vpc, vpcSubnets: { subnetFilters: [ec2.SubnetFilter.byIds(['subnet-elsewhere'])] } }),
    })).toThrow(/The helper instance's subnet selection .* selects no subnet of the VPC/);
  });
});
