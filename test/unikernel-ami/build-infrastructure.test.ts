import { CfnParameter, Size, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { BuildStrategy, MirageUnikernelAmi, MirageUnikernelAmiProps, UnikernelKernel } from '../../lib';
import {
  actionsOf,
  allowedActions,
  handlerStatements,
  newStack,
  PV_X86_64_KERNEL,
  resourceText,
  roleStatements,
  statementsAllowing,
  TemplateStatement,
} from '../fixtures/construct';

const CUSTOM_RESOURCE = 'Custom::MirageUnikernelAmi';
const MANAGED = 'mirage-unikernel-ami:managed';
const STACK = 'mirage-unikernel-ami:stack';
const STACK_ID_TAG = 'mirage-unikernel-ami:stack-id';
const RETAINED = 'mirage-unikernel-ami:retained';
const STACK_NAME = { Ref: 'AWS::StackName' };
const STACK_ID = { Ref: 'AWS::StackId' };
const REQUEST_TAGS_OURS = { [`aws:RequestTag/${MANAGED}`]: 'true', [`aws:RequestTag/${STACK}`]: STACK_NAME, [`aws:RequestTag/${STACK_ID_TAG}`]: STACK_ID };
const EC2_RESOURCE_TAGS_OURS = { [`ec2:ResourceTag/${MANAGED}`]: 'true', [`ec2:ResourceTag/${STACK_ID_TAG}`]: STACK_ID };

/** The actions that take no resource-level permission, so they may (and must) use Resource '*'. */
const UNSCOPED_ACTIONS = [
  'ec2:DescribeImages', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes',
  'ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'ssm:ListCommandInvocations',
  // the encryption-by-default check (handler/encryption-default.ts): reads of account settings
  'ec2:GetEbsEncryptionByDefault', 'ec2:GetEbsDefaultKmsKeyId',
  // whether the account blocks public AMIs (handler/distribution.ts): an account setting
  'ec2:GetImageBlockPublicAccessState',
];

function addUnikernel(stack: Stack, id: string, overrides: Partial<MirageUnikernelAmiProps> = {}): MirageUnikernelAmi {
  return new MirageUnikernelAmi(stack, id, { kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: id.toLowerCase(), ...overrides });
}

let defaultTemplate: Template | undefined;

/**
 * The template of the default stack, one unikernel built by a helper instance. Many tests read it and
 * none changes it, so it is synthesized once, by the first test that asks, instead of once a test.
 */
function defaultStackTemplate(): Template {
  if (defaultTemplate === undefined) {
    const stack = newStack();
    addUnikernel(stack, 'Hello');
    defaultTemplate = Template.fromStack(stack);
  }
  return defaultTemplate;
}

/** The one statement allowing `action` on resources whose ARN text contains `resource`. */
function statementFor(statements: TemplateStatement[], action: string, resource: string): TemplateStatement {
  const found = statementsAllowing(statements, action).filter((statement) => resourceText(statement).includes(resource));
  expect(found).toHaveLength(1);
  return found[0];
}

/** Every statement that lets the handler change something requires this stack's tags, on the request or on the resource. */
function expectEveryChangeScopedToTheStack(statements: TemplateStatement[]) {
  const unscopedChanges = statements.filter((statement) => {
    const actions = actionsOf(statement);
    if (actions.every((action) => UNSCOPED_ACTIONS.includes(action) || /^(logs|s3|iam|kms):/.test(action))) {
      return false;
    }
    if (actions.includes('ec2:RunInstances') && resourceText(statement).includes('::image/')) {
      return false; // the helper's image, subnets and security groups, by id
    }
    if (actions.includes('ssm:SendCommand') && resourceText(statement).includes(':document/')) {
      return false; // the one document, by name
    }
    return statement.Effect === 'Allow' && !JSON.stringify(statement.Condition ?? {}).includes(`Tag/${STACK_ID_TAG}":{"Ref":"AWS::StackId"}`);
  });
  expect(unscopedChanges).toEqual([]);
}

function expectCommonHandlerRules(statements: TemplateStatement[]) {
  // The only Denies: nothing marked retained is destroyed or re-tagged, nothing of another stack id re-tagged.
  expect(statements.filter((statement) => statement.Effect !== 'Allow').map((statement) => [actionsOf(statement).sort(), statement.Condition])).toEqual(expect.arrayContaining([
    [[
      'ec2:CreateTags', 'ec2:DeleteSnapshot', 'ec2:DeleteTags', 'ec2:DeregisterImage', 'ec2:DisableImageDeprecation', 'ec2:DisableImageDeregistrationProtection',
      'ec2:EnableImageDeprecation', 'ec2:EnableImageDeregistrationProtection', 'ec2:ModifyImageAttribute', 'ec2:ModifySnapshotAttribute',
    ], { Null: { [`ec2:ResourceTag/${RETAINED}`]: 'false' } }],
    [['ec2:CreateTags', 'ec2:DeleteTags'], { StringNotEquals: { [`ec2:ResourceTag/${STACK_ID_TAG}`]: STACK_ID }, Null: { [`ec2:ResourceTag/${STACK_ID_TAG}`]: 'false' } }],
  ]));
  for (const statement of statements) {
    expect(['Allow', 'Deny']).toContain(statement.Effect);
    for (const action of actionsOf(statement)) {
      expect(action).not.toContain('*');
    }
    if (statement.Resource === '*') {
      expect(UNSCOPED_ACTIONS).toEqual(expect.arrayContaining(actionsOf(statement)));
    }
  }
  expectEveryChangeScopedToTheStack(statements);
  // The new AMI must carry our tags, and only our AMIs and snapshots can be used, deregistered or deleted.
  const register = statementsAllowing(statements, 'ec2:RegisterImage').filter((statement) => statement.Condition?.StringEquals?.[`aws:RequestTag/${STACK}`]);
  expect(register).toHaveLength(1);
  expect(resourceText(register[0])).toContain('::image/*');
  expect(register[0].Condition).toEqual({ StringEquals: REQUEST_TAGS_OURS });
  const owned = statementFor(statements, 'ec2:DeregisterImage', '::image/*');
  expect(owned.Action).toEqual(['ec2:DeleteSnapshot', 'ec2:DeregisterImage', 'ec2:RegisterImage']);
  expect(resourceText(owned)).toContain('::snapshot/*');
  expect(owned.Condition).toEqual({ StringEquals: EC2_RESOURCE_TAGS_OURS });
  const tagOnRegister = statementsAllowing(statements, 'ec2:CreateTags')
    .filter((statement) => JSON.stringify(statement.Condition).includes('"ec2:CreateAction":"RegisterImage"'));
  expect(tagOnRegister).toHaveLength(1);
  expect(tagOnRegister[0].Condition).toEqual({ StringEquals: { ...REQUEST_TAGS_OURS, 'ec2:CreateAction': 'RegisterImage' } });
  // Re-tagging our AMI and snapshot may not hand them to another stack; untagging never removes the build's own tags.
  const retag = statementsAllowing(statements, 'ec2:CreateTags').filter((statement) => statement.Condition?.StringEqualsIfExists !== undefined
    && statement.Condition?.StringEquals?.[`ec2:ResourceTag/${STACK_ID_TAG}`] !== undefined);
  expect(retag).toHaveLength(1);
  expect(retag[0].Condition).toEqual({ StringEquals: EC2_RESOURCE_TAGS_OURS, StringEqualsIfExists: REQUEST_TAGS_OURS });
  expect(statementFor(statements, 'ec2:DeleteTags', '::image/*').Condition).toEqual({
    'StringEquals': EC2_RESOURCE_TAGS_OURS,
    'ForAllValues:StringNotEquals': {
      'aws:TagKeys': [MANAGED, STACK, STACK_ID_TAG, 'mirage-unikernel-ami:build-id', 'Name', 'mirage-unikernel-ami:resource', 'mirage-unikernel-ami:properties', 'mirage-unikernel-ami:retained', 'mirage-unikernel-ami:build-record'],
    },
    // nor a snapshot's marks of the further AMIs that use it (a rename's)
    'ForAllValues:StringNotLike': { 'aws:TagKeys': ['mirage-unikernel-ami:image-user:*'] },
    'Null': { 'aws:TagKeys': 'false' },
  });
  // What the AMI offers beyond its disk: our AMIs and snapshots only.
  expect(statementFor(statements, 'ec2:ModifyImageAttribute', '::image/*').Condition).toEqual({ StringEquals: EC2_RESOURCE_TAGS_OURS });
  expect(statementFor(statements, 'ec2:DisableImageDeregistrationProtection', '::image/*').Condition).toEqual({ StringEquals: EC2_RESOURCE_TAGS_OURS });
  expect(statementFor(statements, 'ec2:ModifySnapshotAttribute', '::snapshot/*').Condition).toEqual({ StringEquals: EC2_RESOURCE_TAGS_OURS });
  // Cleanup of any earlier build (also of a stack that switched from helper to direct builds) can look for helpers and volumes.
  const describe = statementsAllowing(statements, 'ec2:DescribeImages');
  expect(describe).toHaveLength(1);
  expect(describe[0].Action).toEqual(expect.arrayContaining(['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes']));
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

  test('onEvent and isComplete run the bundled handler on Node.js 24 with one role, enough memory and time', () => {
    const template = defaultStackTemplate();
    const role = { 'Fn::GetAtt': [Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHandlerRole'), 'Arn'] };
    const logGroup = { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureHandlerLogs') };
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.onEvent', Runtime: 'nodejs24.x', MemorySize: 512, Timeout: 600, Role: role, LoggingConfig: { LogGroup: logGroup },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.isComplete', Runtime: 'nodejs24.x', MemorySize: 512, Timeout: 300, Role: role, LoggingConfig: { LogGroup: logGroup },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    const logWrite = statementsAllowing(handlerStatements(template), 'logs:PutLogEvents');
    expect(logWrite).toHaveLength(1);
    expect(logWrite[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^MirageUnikernelAmiBuildInfrastructureHandlerLogs/), 'Arn'] });
  });

  test('onEvent, the waiter and its last isComplete fit in the custom resource\'s ServiceTimeout, which is CloudFormation\'s hour', () => {
    const template = defaultStackTemplate();
    const serviceTimeout = Number(Object.values(template.findResources(CUSTOM_RESOURCE))[0].Properties.ServiceTimeout);
    expect(serviceTimeout).toBe(3600);
    const timeoutOf = (handler: string) => Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Handler: handler } }))[0].Properties.Timeout as number;
    const machine = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0];
    const definition = JSON.stringify(machine.Properties.DefinitionString);
    const interval = Number(/\\"IntervalSeconds\\":(\d+)/.exec(definition)![1]);
    const attempts = Number(/\\"MaxAttempts\\":(\d+)/.exec(definition)![1]);
    // 10 s since issue 18 (with isComplete looking again within its invocation: handler/index.ts, bench/waits.ts).
    expect(interval).toBe(10);
    expect(timeoutOf('index.onEvent') + interval * attempts + timeoutOf('index.isComplete')).toBeLessThanOrEqual(serviceTimeout);
    // The build still gets most of the hour.
    expect(interval * attempts).toBeGreaterThanOrEqual(45 * 60);
  });

  test('the waiter logs every state, never the execution data (the CloudFormation event and its presigned URL)', () => {
    const template = defaultStackTemplate();
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureWaiterLogs'), 'Arn'] } } }],
      },
    });
  });

  test('no role of the library uses an AWS managed policy; the framework\'s functions may only log and invoke our handlers', () => {
    const template = defaultStackTemplate();
    const roles = template.findResources('AWS::IAM::Role');
    const withManaged = Object.entries(roles).filter(([, role]) => role.Properties.ManagedPolicyArns !== undefined).map(([id]) => id);
    // Only the S3 auto-delete provider of aws-cdk-lib (a CfnResource that aws-cdk-lib writes itself) keeps one.
    expect(withManaged).toEqual([expect.stringMatching(/^CustomS3AutoDeleteObjectsCustomResourceProviderRole/)]);
    for (const prefix of ['MirageUnikernelAmiBuildInfrastructureProviderOnEventRole', 'MirageUnikernelAmiBuildInfrastructureProviderWaiterRole']) {
      const actions = allowedActions(roleStatements(template, prefix));
      expect(actions.filter((action) => !['lambda:GetFunction', 'lambda:InvokeFunction', 'logs:CreateLogStream', 'logs:PutLogEvents', 'states:StartExecution'].includes(action))).toEqual([]);
    }
  });

  test('the custom resource waits for the handler role and all its policies', () => {
    const resource = Object.values(defaultStackTemplate().findResources(CUSTOM_RESOURCE))[0];
    expect(resource.DependsOn).toEqual(expect.arrayContaining([
      expect.stringMatching(/^MirageUnikernelAmiBuildInfrastructureHandlerRoleDefaultPolicy/),
      expect.stringMatching(/^MirageUnikernelAmiBuildInfrastructureHandlerRoleHelperBuildPolicy/),
    ]));
  });
});

describe('helper-instance builds (the default)', () => {
  let template: Template;
  let statements: TemplateStatement[];
  beforeAll(() => {
    template = defaultStackTemplate();
    statements = handlerStatements(template);
  });

  test('the custom resource names the staging bucket and the helper\'s launch settings; the helper is a t3.micro', () => {
    template.hasResourceProperties(CUSTOM_RESOURCE, {
      Strategy: 'helper-instance',
      StagingBucket: { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureStagingBucket') },
      Helper: {
        InstanceType: 't3.micro',
        SubnetId: { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureVpcPublicSubnet1') },
        // the shared VPC's public subnets of both zones, the first one first (a second zone when the first lacks capacity)
        SubnetIds: [
          { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureVpcPublicSubnet1') },
          { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureVpcPublicSubnet2') },
        ],
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
        LifecycleConfiguration: { Rules: [{ Prefix: 'builds/', ExpirationInDays: 1, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }] },
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

  test('the helper\'s own role: the SSM agent\'s Run Command calls only (no Session Manager, no S3), inline, no managed policy', () => {
    const helperRoles = template.findResources('AWS::IAM::Role', { Properties: { AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })] } } });
    const [helperRoleId] = Object.keys(helperRoles).filter((id) => id.startsWith('MirageUnikernelAmiBuildInfrastructureHelperRole'));
    expect(helperRoles[helperRoleId].Properties.ManagedPolicyArns).toBeUndefined();
    const helperStatements = roleStatements(template, 'MirageUnikernelAmiBuildInfrastructureHelperRole');
    expect(allowedActions(helperStatements)).toEqual([
      'ec2messages:AcknowledgeMessage', 'ec2messages:DeleteMessage', 'ec2messages:FailMessage', 'ec2messages:GetMessages', 'ec2messages:SendReply',
      'ssm:UpdateInstanceInformation',
      'ssmmessages:CreateControlChannel', 'ssmmessages:OpenControlChannel',
    ]);
    const heartbeat = statementFor(helperStatements, 'ssm:UpdateInstanceInformation', ':instance/*');
    expect(resourceText(heartbeat)).toContain(':ec2:');
    // Whatever carries ec2:SourceInstanceARN only from an instance of this account and region.
    for (const action of ['ssm:UpdateInstanceInformation', 'ssmmessages:CreateControlChannel', 'ec2messages:GetMessages', 'ec2messages:SendReply']) {
      const [statement] = statementsAllowing(helperStatements, action);
      expect(JSON.stringify(statement.Condition?.StringLike?.['ec2:SourceInstanceARN'])).toContain(':instance/*');
    }
    template.hasResourceProperties('AWS::IAM::InstanceProfile', { Roles: [{ Ref: helperRoleId }] });
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

  test('handler: no wildcard actions, Resource * only for describe/list calls, every change scoped to this stack', () => {
    expectCommonHandlerRules(statements);
  });

  test('handler: launches only this stack\'s helpers, of the helper type, with IMDSv2 and the helper profile, in the helper\'s subnet and security group', () => {
    expect(statementFor(statements, 'ec2:RunInstances', ':instance/*').Condition).toEqual({
      StringEquals: {
        ...REQUEST_TAGS_OURS,
        'ec2:MetadataHttpTokens': 'required',
        'ec2:InstanceType': ['t3.micro'],
        'ec2:InstanceProfile': { 'Fn::GetAtt': [expect.stringMatching(/^MirageUnikernelAmiBuildInfrastructureHelperInstanceProfile/), 'Arn'] },
      },
    });
    // Its volumes: the data volume of the unikernel's size and AL2023's 8 GiB root, both gp3, as the handler maps them.
    expect(statementFor(statements, 'ec2:RunInstances', ':volume/*').Condition).toEqual({
      StringEquals: { ...REQUEST_TAGS_OURS, 'ec2:VolumeType': 'gp3' },
      NumericEquals: { 'ec2:VolumeSize': ['8', '1'] },
    });
    expect(statementFor(statements, 'ec2:RunInstances', ':network-interface/*').Condition).toEqual({ StringEquals: REQUEST_TAGS_OURS });
    const used = statementFor(statements, 'ec2:RunInstances', '::image/');
    expect(used.Condition).toBeUndefined();
    // Only the helper's own Amazon Linux image, from the public SSM parameter, may be launched.
    expect(resourceText(used)).toMatch(/::image\/",\{"Ref":"SsmParameterValue[^"]*al2023/i);
    expect(resourceText(used)).not.toContain('::image/*');
    expect(resourceText(used)).toMatch(/:subnet\/",\{"Ref":"MirageUnikernelAmiBuildInfrastructureVpcPublicSubnet1/);
    expect(resourceText(used)).toMatch(/:security-group\/",\{"Fn::GetAtt":\["MirageUnikernelAmiBuildInfrastructureHelperSecurityGroup/);
    expect(statementsAllowing(statements, 'ec2:RunInstances')).toHaveLength(4);
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

  test('handler: volumes only through the helper\'s launch; snapshots tagged as this stack\'s; changes only those', () => {
    // The data volume comes with the launch: no volume is created, attached or detached on its own.
    for (const action of ['ec2:CreateVolume', 'ec2:AttachVolume', 'ec2:DetachVolume', 'ec2:DescribeSubnets']) {
      expect(statementsAllowing(statements, action)).toEqual([]);
    }
    expect(statementFor(statements, 'ec2:CreateSnapshot', '::snapshot/*').Condition).toEqual({ StringEquals: REQUEST_TAGS_OURS });
    const owned = statementFor(statements, 'ec2:TerminateInstances', ':instance/*');
    // DeleteVolume for the detached volumes of builds made by earlier versions of the handler.
    expect(actionsOf(owned).sort()).toEqual(['ec2:CreateSnapshot', 'ec2:DeleteVolume', 'ec2:TerminateInstances']);
    expect(resourceText(owned)).toContain(':volume/*');
    expect(owned.Condition).toEqual({ StringEquals: EC2_RESOURCE_TAGS_OURS });
    const tagOnCreate = statementsAllowing(statements, 'ec2:CreateTags').filter((statement) => resourceText(statement).includes(':instance/*')
      && JSON.stringify(statement.Condition).includes('ec2:CreateAction'));
    expect(tagOnCreate).toHaveLength(1);
    expect(tagOnCreate[0].Condition).toEqual({ StringEquals: { ...REQUEST_TAGS_OURS, 'ec2:CreateAction': ['RunInstances', 'CreateSnapshot'] } });
    // Migration from a release before the stack-id tag: only that tag, only on a resource of this stack's name with none yet.
    const migration = statementsAllowing(statements, 'ec2:CreateTags').filter((statement) => resourceText(statement).includes(':instance/*')
      && statement.Condition?.['ForAllValues:StringEquals'] !== undefined);
    expect(migration).toHaveLength(1);
    expect(migration[0].Condition).toEqual({
      'StringEquals': { [`ec2:ResourceTag/${MANAGED}`]: 'true', [`ec2:ResourceTag/${STACK}`]: STACK_NAME, [`aws:RequestTag/${STACK_ID_TAG}`]: STACK_ID },
      'ForAllValues:StringEquals': { 'aws:TagKeys': [STACK_ID_TAG] },
      'Null': { 'aws:TagKeys': 'false', [`ec2:ResourceTag/${STACK_ID_TAG}`]: 'true', [`ec2:ResourceTag/${RETAINED}`]: 'true' },
    });
  });

  test('handler: runs commands only on this stack\'s helpers, with AWS-RunShellScript', () => {
    const document = statementFor(statements, 'ssm:SendCommand', ':document/AWS-RunShellScript');
    expect(resourceText(document)).toMatch(/:ssm:",\{"Ref":"AWS::Region"\},":\*:document\/AWS-RunShellScript"/);
    expect(statementFor(statements, 'ssm:SendCommand', ':instance/*').Condition).toEqual({
      StringEquals: { [`ssm:resourceTag/${MANAGED}`]: 'true', [`ssm:resourceTag/${STACK_ID_TAG}`]: STACK_ID },
    });
  });

  test('handler: stages images under builds/ of the staging bucket only (aborting a failed multipart upload); reads back only what it staged', () => {
    const bucketArn = { 'Fn::GetAtt': [expect.stringMatching(/StagingBucket/), 'Arn'] };
    const staging = statementsAllowing(statements, 's3:PutObject');
    expect(staging).toHaveLength(1);
    expect(actionsOf(staging[0]).sort()).toEqual(['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:PutObject']);
    expect(staging[0].Resource).toEqual({ 'Fn::Join': ['', [bucketArn, '/builds/*']] });
    const reads = statementsAllowing(statements, 's3:GetObject').filter((statement) => resourceText(statement).includes('StagingBucket'));
    expect(reads).toHaveLength(1);
    // (progress objects, and the staged images the helper downloads with URLs the handler presigns)
    expect(reads[0].Resource).toEqual({ 'Fn::Join': ['', [bucketArn, '/builds/*']] });
    // So that reading a progress object not written yet answers NoSuchKey, not AccessDenied.
    expect(statementsAllowing(statements, 's3:ListBucket')).toEqual([{ Action: 's3:ListBucket', Effect: 'Allow', Resource: bucketArn }]);
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
    addUnikernel(stack, 'Hello', { buildStrategy: BuildStrategy.ebsDirect(), volumeSize: Size.gibibytes(2) });
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
    // The one managed policy is the image-distribution one both strategies need, not the helper build's.
    expect(Object.keys(template.findResources('AWS::IAM::ManagedPolicy'))).toEqual([expect.stringMatching(/ImageDistributionPolicy/)]);
    expect(Object.keys(template.findResources('AWS::IAM::Role')).filter((id) => id.includes('HelperRole'))).toEqual([]);
    expect(Object.keys(template.toJSON().Parameters)).toEqual(['BootstrapVersion']);
  });

  test('the handler role is narrow: snapshot writing, image registration and the reads cleanup needs', () => {
    expectCommonHandlerRules(statements);
    expect(allowedActions(statements)).toEqual([
      'ebs:CompleteSnapshot', 'ebs:GetSnapshotBlock', 'ebs:ListSnapshotBlocks', 'ebs:PutSnapshotBlock', 'ebs:StartSnapshot',
      'ec2:CreateTags', 'ec2:DeleteSnapshot', 'ec2:DeleteTags', 'ec2:DeregisterImage',
      'ec2:DescribeImageAttribute', 'ec2:DescribeImages', 'ec2:DescribeInstances', 'ec2:DescribeSnapshotAttribute', 'ec2:DescribeSnapshots', 'ec2:DescribeVolumes',
      'ec2:DisableImageDeprecation', 'ec2:DisableImageDeregistrationProtection', 'ec2:EnableImageDeprecation', 'ec2:EnableImageDeregistrationProtection',
      'ec2:GetEbsDefaultKmsKeyId', 'ec2:GetEbsEncryptionByDefault', 'ec2:GetImageBlockPublicAccessState',
      'ec2:ModifyImageAttribute', 'ec2:ModifySnapshotAttribute', 'ec2:RegisterImage',
      'kms:DescribeKey',
      'logs:CreateLogStream', 'logs:PutLogEvents',
      's3:GetObject',
    ]);
    expect(statementFor(statements, 'ebs:StartSnapshot', '::snapshot/*').Condition).toEqual({
      StringEquals: REQUEST_TAGS_OURS,
      NumericEquals: { 'ebs:VolumeSize': ['2'] },
    });
    const write = statementFor(statements, 'ebs:PutSnapshotBlock', '::snapshot/*');
    expect(write.Action).toEqual(['ebs:PutSnapshotBlock', 'ebs:CompleteSnapshot']);
    expect(write.Condition).toEqual({ StringEquals: { [`aws:ResourceTag/${MANAGED}`]: 'true', [`aws:ResourceTag/${STACK_ID_TAG}`]: STACK_ID } });
    // Reading back a snapshot the handler did not complete itself: this stack's snapshots only.
    const read = statementFor(statements, 'ebs:ListSnapshotBlocks', '::snapshot/*');
    expect(read.Action).toEqual(['ebs:ListSnapshotBlocks', 'ebs:GetSnapshotBlock']);
    expect(read.Condition).toEqual(write.Condition);
  });

  test('StartSnapshot may tag the snapshot it creates with this stack\'s tags, with or without ec2:CreateAction, never a snapshot with any build tag, of another size', () => {
    const tagOnStart = statementsAllowing(statements, 'ec2:CreateTags').filter((statement) => statement.Condition?.StringEqualsIfExists?.['ec2:CreateAction'] !== undefined);
    expect(tagOnStart).toHaveLength(1);
    expect(resourceText(tagOnStart[0])).toContain('::snapshot/*');
    const buildKeys = [MANAGED, STACK, STACK_ID_TAG, 'mirage-unikernel-ami:build-id', 'mirage-unikernel-ami:resource', 'mirage-unikernel-ami:properties', RETAINED, 'mirage-unikernel-ami:build-record'];
    expect(tagOnStart[0].Condition).toEqual({
      StringEquals: REQUEST_TAGS_OURS,
      StringEqualsIfExists: { 'ec2:CreateAction': 'StartSnapshot' },
      NumericEqualsIfExists: { 'ec2:VolumeSize': ['2'] },
      Null: Object.fromEntries(buildKeys.map((key) => [`ec2:ResourceTag/${key}`, 'true'])),
    });
  });
});

describe('a stack with both strategies', () => {
  test('the shared role holds the union, each statement once, and the sizes and helper types of all its unikernels', () => {
    const stack = newStack();
    addUnikernel(stack, 'Direct', { buildStrategy: BuildStrategy.ebsDirect(), volumeSize: Size.gibibytes(3) });
    addUnikernel(stack, 'Helper');
    addUnikernel(stack, 'Helper2', { buildStrategy: BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType('t1.micro') }) });
    addUnikernel(stack, 'Direct2', { buildStrategy: BuildStrategy.ebsDirect() });
    const statements = handlerStatements(Template.fromStack(stack));
    expect(statementsAllowing(statements, 'ebs:StartSnapshot')).toHaveLength(1);
    expect(statementsAllowing(statements, 'ec2:RunInstances')).toHaveLength(4);
    expect(statementsAllowing(statements, 'ec2:RegisterImage')).toHaveLength(2);
    // The kernels, and the helper builds' progress objects.
    expect(statementsAllowing(statements, 's3:GetObject')).toHaveLength(2);
    // A helper launch creates volumes of the helper unikernels' size (and AL2023's root); StartSnapshot snapshots of the direct ones' sizes.
    expect(statementFor(statements, 'ec2:RunInstances', ':volume/*').Condition!.NumericEquals).toEqual({ 'ec2:VolumeSize': ['8', '1'] });
    expect(statementFor(statements, 'ebs:StartSnapshot', '::snapshot/*').Condition!.NumericEquals).toEqual({ 'ebs:VolumeSize': ['3', '1'] });
    expect(statementFor(statements, 'ec2:RunInstances', ':instance/*').Condition!.StringEquals['ec2:InstanceType']).toEqual(['t3.micro', 't1.micro']);
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
        instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.SMALL),
      }),
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties(CUSTOM_RESOURCE, {
      Helper: Match.objectLike({ InstanceType: 't3.small', SubnetId: { Ref: Match.stringLikeRegexp('^VpcPrivateSubnet1') } }),
    });
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: { Ref: Match.stringLikeRegexp('^Vpc') }, GroupDescription: Match.stringLikeRegexp('build helper') });
    const statements = handlerStatements(template);
    const network = statementFor(statements, 'ec2:RunInstances', '::image/');
    expect(resourceText(network)).toMatch(/:subnet\/",\{"Ref":"VpcPrivateSubnet1/);
    expect(statementFor(statements, 'ec2:RunInstances', ':instance/*').Condition!.StringEquals['ec2:InstanceType']).toEqual(['t3.small']);
  });

  test('the helper\'s subnets: the first selected one, then one of each other zone, in selection order; RunInstances allowed in each', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 1, maxAzs: 2 });
    // the first two selected subnets share a zone
    const selected = [vpc.publicSubnets[0], vpc.privateSubnets[0], vpc.privateSubnets[1]];
    addUnikernel(stack, 'Given', { buildStrategy: BuildStrategy.helperInstance({ vpc, vpcSubnets: { subnets: selected } }) });
    const template = Template.fromStack(stack);
    const ref = (subnet: ec2.ISubnet) => ({ Ref: stack.getLogicalId(subnet.node.defaultChild as ec2.CfnSubnet) });
    template.hasResourceProperties(CUSTOM_RESOURCE, { Helper: Match.objectLike({ SubnetId: ref(selected[0]), SubnetIds: [ref(selected[0]), ref(selected[2])] }) });
    const network = resourceText(statementFor(handlerStatements(template), 'ec2:RunInstances', '::image/'));
    expect(network.match(/:subnet\//g)).toHaveLength(2);
    expect(network).toContain(ref(selected[2]).Ref);
    expect(network).not.toContain(ref(selected[1]).Ref);
  });

  test('two unikernels in two VPCs get a security group each, and RunInstances is allowed in both', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 1 });
    addUnikernel(stack, 'Own');
    addUnikernel(stack, 'Given', { buildStrategy: BuildStrategy.helperInstance({ vpc }) });
    const template = Template.fromStack(stack);
    expect(Object.keys(template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('build helper') } }))).toHaveLength(2);
    const network = resourceText(statementFor(handlerStatements(template), 'ec2:RunInstances', '::image/'));
    // each VPC's subnets of two zones: the helper falls back to the second zone when the first lacks capacity
    expect(network.match(/:subnet\//g)).toHaveLength(4);
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

  test.each(['t1.micro', 'm1.small', 'm2.xlarge', 'c1.medium'])('a %s helper synthesizes with a warning naming a type known to run the helper (t3.micro)', (type) => {
    const stack = newStack();
    addUnikernel(stack, 'Hello', { buildStrategy: BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType(type) }) });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp(`helper instance type ${type.replace('.', '\\.')} is of the previous-generation`));
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings[0].entry.data)).toMatch(/x86-64-v2 CPU.*such as t3\.micro \(the default\)/);
  });

  test.each(['t3.micro', 'c3.large', 'm3.medium'])('a %s helper gives no such warning', (type) => {
    const stack = newStack();
    addUnikernel(stack, 'Hello', { buildStrategy: BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType(type) }) });
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('is of the previous-generation'));
  });

  test('a selection that matches no subnet is refused', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC }] });
    expect(() => addUnikernel(stack, 'Hello', {
      buildStrategy: BuildStrategy.helperInstance({ vpc, vpcSubnets: { subnetFilters: [ec2.SubnetFilter.byIds(['subnet-elsewhere'])] } }),
    })).toThrow(/The helper instance's subnet selection .* selects no subnet of the VPC/);
  });
});

/** The statement of the encryption-by-default check: kms:DescribeKey on this account's keys. */
function isDefaultKeyCheck(statement: TemplateStatement): boolean {
  return JSON.stringify(statement.Resource).includes(':key/*');
}

describe('the check of EBS encryption by default', () => {
  test.each([['helper', BuildStrategy.helperInstance()], ['EBS direct', BuildStrategy.ebsDirect()]])('%s builds: the two EC2 reads on *, and only kms:DescribeKey on the keys of this account and region', (_name, buildStrategy) => {
    const stack = newStack();
    addUnikernel(stack, 'Hello', { buildStrategy });
    const statements = handlerStatements(Template.fromStack(stack));
    expect(statementsAllowing(statements, 'ec2:GetEbsEncryptionByDefault').map((statement) => [statement.Resource, actionsOf(statement)]))
      .toEqual([['*', ['ec2:GetEbsEncryptionByDefault', 'ec2:GetEbsDefaultKmsKeyId']]]);
    const keys = statements.filter(isDefaultKeyCheck);
    expect(keys.map((statement) => [actionsOf(statement), statement.Condition])).toEqual([[['kms:DescribeKey'], undefined]]);
    expect(keys[0].Resource).toEqual({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':key/*']] });
  });
});

describe('encryption keys', () => {
  function keyStatements(buildStrategy: BuildStrategy) {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    addUnikernel(stack, 'Hello', { encryptionKey: key, buildStrategy });
    const keyArn = { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] };
    const statements = handlerStatements(Template.fromStack(stack))
      .filter((statement) => actionsOf(statement).some((action) => action.startsWith('kms:')))
      .filter((statement) => !isDefaultKeyCheck(statement));
    for (const statement of statements) {
      expect(statement.Resource).toEqual(keyArn);
    }
    return statements;
  }

  test('helper builds: the key only through EC2 of the stack\'s region, grants only for AWS resources', () => {
    const viaEc2 = { 'kms:ViaService': { 'Fn::Join': ['', ['ec2.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] } };
    expect(keyStatements(BuildStrategy.helperInstance())).toEqual([
      expect.objectContaining({ Action: 'kms:CreateGrant', Condition: { Bool: { 'kms:GrantIsForAWSResource': 'true' }, StringEquals: viaEc2 } }),
      expect.objectContaining({
        Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'],
        Condition: { StringEquals: viaEc2 },
      }),
    ]);
  });

  test('EBS direct builds: the actions AWS documents for encrypted EBS direct snapshots, grants only for AWS resources', () => {
    expect(keyStatements(BuildStrategy.ebsDirect())).toEqual([
      expect.objectContaining({ Action: 'kms:CreateGrant', Condition: { Bool: { 'kms:GrantIsForAWSResource': 'true' } } }),
      expect.objectContaining({
        Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'],
      }),
    ]);
  });
});
