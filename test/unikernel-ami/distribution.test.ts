/**
 * The distribution props (lib/unikernel-ami/distribution.ts and their use in unikernel-ami.ts): the
 * custom-resource properties they become, the SSM parameter, grantLaunch's statements, and each
 * synth-time check. The handler's side is tested on the fake AWS; the IAM proof of grantLaunch is
 * test/iam/grant-launch.test.ts.
 */
import { CfnParameter, Duration, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { MirageUnikernelAmi, MirageUnikernelAmiProps, UnikernelKernel } from '../../lib';
import { buildIdOf } from '../../lib/unikernel-ami/handler/build-id';
import {
  DEPRECATE_AFTER_MAX,
  DEPRECATE_AFTER_MAX_PUBLIC,
  IMAGE_DESCRIPTION_MAX_LENGTH,
  IMAGE_NAME_PREFIX_MAX_LENGTH,
  IMAGE_NAME_SUFFIX_LENGTH,
} from '../../lib/unikernel-ami/distribution';
import { UnikernelAmiProperties } from '../../lib/unikernel-ami/types';
import { newStack, PV_X86_64_KERNEL, roleStatements, statementsAllowing, TemplateStatement } from '../fixtures/construct';

const CUSTOM_RESOURCE = 'Custom::MirageUnikernelAmi';
const ORGANIZATION = 'arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5';
const ORGANIZATIONAL_UNIT = 'arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-cd34ef56';

function helloProps(overrides: Partial<MirageUnikernelAmiProps> = {}): MirageUnikernelAmiProps {
  return { kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: 'hello', ...overrides };
}

/** The custom resource's properties when the AMI is built with `overrides`. */
function propertiesOf(overrides: Partial<MirageUnikernelAmiProps>, stack: Stack = newStack()): UnikernelAmiProperties {
  new MirageUnikernelAmi(stack, 'Hello', helloProps(overrides));
  const resources = Object.values(Template.fromStack(stack).findResources(CUSTOM_RESOURCE));
  expect(resources).toHaveLength(1);
  return resources[0].Properties;
}

/** What synthesizing an AMI with `overrides` throws (or nothing). */
function synthError(overrides: Partial<MirageUnikernelAmiProps> | ((stack: Stack) => Partial<MirageUnikernelAmiProps>)): string | undefined {
  const stack = newStack();
  try {
    new MirageUnikernelAmi(stack, 'Hello', helloProps(typeof overrides === 'function' ? overrides(stack) : overrides));
    Template.fromStack(stack);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The logical id of the stack's one custom resource. */
function amiLogicalId(template: Template): string {
  return Object.keys(template.findResources(CUSTOM_RESOURCE))[0];
}

describe('a stack with every distribution option', () => {
  function everyOption() {
    const stack = newStack({ account: '123456789012', region: 'eu-west-1' });
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const launcher = new iam.Role(stack, 'Launcher', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps({
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      imageName: 'web (v1.2) [prod] ./-\'@_',
      imageDescription: 'The web unikernel, production build',
      sharing: {
        accounts: ['111111111111', '222222222222'],
        organizationArns: [ORGANIZATION],
        organizationalUnitArns: [ORGANIZATIONAL_UNIT],
        snapshotAccounts: ['111111111111'],
      },
      deprecateAfter: Duration.days(180),
      deregistrationProtection: true,
      deregistrationProtectionCooldown: true,
      imageIdParameterName: '/unikernels/web/image-id',
    }));
    const grant = ami.grantLaunch(launcher);
    return { stack, ami, key, grant, template: Template.fromStack(stack) };
  }

  test('every option reaches the custom resource\'s properties', () => {
    const { template } = everyOption();
    template.hasResourceProperties(CUSTOM_RESOURCE, {
      Name: 'hello',
      ImageName: 'web (v1.2) [prod] ./-\'@_',
      ImageDescription: 'The web unikernel, production build',
      Sharing: {
        Accounts: ['111111111111', '222222222222'],
        OrganizationArns: [ORGANIZATION],
        OrganizationalUnitArns: [ORGANIZATIONAL_UNIT],
        SnapshotAccounts: ['111111111111'],
        Public: Match.absent(),
      },
      DeprecateAfterSeconds: String(180 * 24 * 3600),
      DeregistrationProtection: 'on-with-cooldown',
      RemovalPolicy: 'retain',
    });
  });

  test('the AMI id is published as an aws:ec2:image SSM parameter that CloudFormation owns', () => {
    const { template, stack, ami } = everyOption();
    const logicalId = amiLogicalId(template);
    template.resourceCountIs('AWS::SSM::Parameter', 1);
    template.hasResource('AWS::SSM::Parameter', {
      Properties: {
        Name: '/unikernels/web/image-id',
        Type: 'String',
        DataType: 'aws:ec2:image',
        Value: { 'Fn::GetAtt': [logicalId, 'ImageId'] },
      },
      // Deleted with the stack, like any parameter the stack creates.
      DeletionPolicy: Match.absent(),
    });
    expect(stack.resolve(ami.imageIdParameter!.parameterName)).toEqual({ Ref: Object.keys(template.findResources('AWS::SSM::Parameter'))[0] });
  });

  test.each([
    ['/unikernels/web/image-id', ':parameter'],
    ['web-image-id', ':parameter/'],
  ])('the parameter %j has an ARN without a doubled or missing slash: ...%s<name>', (imageIdParameterName, beforeName) => {
    const stack = newStack({ account: '123456789012', region: 'eu-west-1' });
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps({ imageIdParameterName }));
    const parameterId = Object.keys(Template.fromStack(stack).findResources('AWS::SSM::Parameter'))[0];
    expect(stack.resolve(ami.imageIdParameter!.parameterArn)).toEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ssm:eu-west-1:123456789012${beforeName}`, { Ref: parameterId }]],
    });
  });

  test('imageName is the handler\'s ImageName attribute', () => {
    const { template, stack, ami } = everyOption();
    expect(stack.resolve(ami.imageName)).toEqual({ 'Fn::GetAtt': [amiLogicalId(template), 'ImageName'] });
  });

  test('grantLaunch: RunInstances on this image only, and the key through EC2 of this region', () => {
    const { template, key, stack } = everyOption();
    const statements = roleStatements(template, 'Launcher');
    const keyArn = stack.resolve(key.keyArn);
    const viaEc2 = { 'kms:ViaService': { 'Fn::Join': ['', ['ec2.eu-west-1.', { Ref: 'AWS::URLSuffix' }]] } };
    expect(statementsAllowing(statements, 'ec2:RunInstances')).toEqual([{
      Effect: 'Allow',
      Action: 'ec2:RunInstances',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:eu-west-1::image/', { 'Fn::GetAtt': [amiLogicalId(template), 'ImageId'] }]] },
    }]);
    expect(statementsAllowing(statements, 'kms:CreateGrant')).toEqual([{
      Effect: 'Allow',
      Action: 'kms:CreateGrant',
      Resource: keyArn,
      Condition: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }]);
    expect(statementsAllowing(statements, 'kms:Decrypt')).toEqual([{
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'],
      Resource: keyArn,
      Condition: { StringEquals: viaEc2 },
    }]);
    // Nothing else: no action on any other resource.
    expect(statements).toHaveLength(3);
  });

  test('grantLaunch\'s grant is effective and names the grantee\'s policy', () => {
    const { grant } = everyOption();
    expect(grant.success).toBe(true);
    expect(grant.principalStatements.length).toBeGreaterThan(0);
  });
});

describe('defaults', () => {
  test('no distribution prop: none of their properties, no SSM parameter', () => {
    const stack = newStack();
    const properties = propertiesOf({}, stack);
    for (const property of ['ImageName', 'ImageDescription', 'Sharing', 'DeprecateAfterSeconds', 'DeregistrationProtection']) {
      expect(properties).not.toHaveProperty(property);
    }
    Template.fromStack(stack).resourceCountIs('AWS::SSM::Parameter', 0);
    expect((stack.node.findChild('Hello') as MirageUnikernelAmi).imageIdParameter).toBeUndefined();
  });

  test('sharing with nobody is no Sharing property; protection off is no DeregistrationProtection property', () => {
    const properties = propertiesOf({ sharing: { accounts: [], organizationArns: [], publicLaunch: false }, deregistrationProtection: false });
    expect(properties).not.toHaveProperty('Sharing');
    expect(properties).not.toHaveProperty('DeregistrationProtection');
  });

  test('protection without cooldown is allowed with DESTROY', () => {
    expect(propertiesOf({ deregistrationProtection: true }).DeregistrationProtection).toBe('on');
  });

  test('public launch of an unencrypted AMI', () => {
    expect(propertiesOf({ sharing: { publicLaunch: true }, deprecateAfter: Duration.days(730) })).toMatchObject({
      Sharing: { Public: 'true' },
      DeprecateAfterSeconds: String(730 * 24 * 3600),
    });
  });

  test('an unencrypted AMI and one encrypted with a customer managed key may be shared', () => {
    expect(propertiesOf({ sharing: { accounts: ['111111111111'] } }).Sharing).toEqual({ Accounts: ['111111111111'] });
    const stack = newStack();
    const encryptionKey = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    expect(propertiesOf({ encryptionKey, sharing: { organizationArns: [ORGANIZATION] } }, stack).Sharing).toEqual({ OrganizationArns: [ORGANIZATION] });
  });

  test('grantLaunch on an unencrypted AMI, or one under the AWS managed key, grants RunInstances on the image only', () => {
    for (const encryption of [false, true]) {
      const stack = newStack();
      const launcher = new iam.Role(stack, 'Launcher', { assumedBy: new iam.AccountRootPrincipal() });
      new MirageUnikernelAmi(stack, 'Hello', helloProps({ encryption })).grantLaunch(launcher);
      const statements: TemplateStatement[] = roleStatements(Template.fromStack(stack), 'Launcher');
      expect(statements.map((statement) => statement.Action)).toEqual(['ec2:RunInstances']);
    }
  });
});

describe('the name\'s unique suffix', () => {
  test('is as long as the handler\'s build id with its dash, and a prefix of the longest length makes a 128-character name', () => {
    const buildId = buildIdOf({ StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/S/1', LogicalResourceId: 'Hello', RequestId: 'r' });
    expect(`-${buildId}`).toHaveLength(IMAGE_NAME_SUFFIX_LENGTH);
    expect(IMAGE_NAME_PREFIX_MAX_LENGTH + IMAGE_NAME_SUFFIX_LENGTH).toBe(128);
    expect(propertiesOf({ imageName: 'x'.repeat(IMAGE_NAME_PREFIX_MAX_LENGTH) }).ImageName).toHaveLength(107);
  });
});

describe('synth-time validation', () => {
  test('an imageName too long for the build id is refused', () => {
    expect(synthError({ imageName: 'x'.repeat(IMAGE_NAME_PREFIX_MAX_LENGTH + 1) }))
      .toMatch(/^TestStack\/Hello: imageName "x+" is 108 characters long\. The handler appends "-<build id>" \(21 characters\), so give 1 to 107 characters/);
  });

  test('an empty imageName is refused', () => {
    expect(synthError({ imageName: '' })).toMatch(/imageName "" is 0 characters long.*or leave imageName out to start the name with `name`/);
  });

  test.each(['web,1', 'web!', 'wéb', 'web:1', 'web\t1'])('the imageName %j is refused, naming the character EC2 does not allow', (imageName) => {
    const bad = [...imageName].find((c) => !/[A-Za-z0-9()[\] ./\-'@_]/.test(c))!;
    expect(synthError({ imageName })).toContain(`contains ${JSON.stringify(bad)}, which EC2 does not allow in an AMI name`);
  });

  test('an imageDescription over 255 characters is refused; 255 is accepted', () => {
    expect(synthError({ imageDescription: 'd'.repeat(IMAGE_DESCRIPTION_MAX_LENGTH + 1) }))
      .toMatch(/imageDescription is 256 characters long: EC2 takes 1 to 255\. Shorten it, or leave imageDescription out/);
    expect(synthError({ imageDescription: 'd'.repeat(IMAGE_DESCRIPTION_MAX_LENGTH) })).toBeUndefined();
  });

  test('an empty imageDescription is refused', () => {
    expect(synthError({ imageDescription: '' })).toMatch(/imageDescription is 0 characters long/);
  });

  test.each([
    ['accounts', '12345678901'],
    ['accounts', '1234567890123'],
    ['accounts', 'arn:aws:iam::111122223333:root'],
    ['snapshotAccounts', '11112222333a'],
  ] as const)('sharing.%s with %j is refused: not a 12-digit account id', (field, value) => {
    expect(synthError({ sharing: { [field]: [value] } })).toContain(`sharing.${field} contains "${value}", which is not a 12-digit account id`);
  });

  test.each([
    ORGANIZATIONAL_UNIT,
    'o-a1b2c3d4e5',
    'arn:aws:organizations::111122223333:organization/o-short',
    'arn:aws:organizations:us-east-1:111122223333:organization/o-a1b2c3d4e5',
  ])('sharing.organizationArns with %j is refused: not an organization ARN', (value) => {
    expect(synthError({ sharing: { organizationArns: [value] } })).toContain(`sharing.organizationArns contains "${value}", which is not an organization ARN`);
  });

  test.each([
    ORGANIZATION,
    'ou-ab12-cd34ef56',
    'arn:aws:organizations::111122223333:ou/ou-ab12-cd34ef56',
    'arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12',
  ])('sharing.organizationalUnitArns with %j is refused: not an organizational unit ARN', (value) => {
    expect(synthError({ sharing: { organizationalUnitArns: [value] } }))
      .toContain(`sharing.organizationalUnitArns contains "${value}", which is not an organizational unit ARN`);
  });

  test.each([
    ['accounts', '111111111111'],
    ['organizationArns', ORGANIZATION],
    ['organizationalUnitArns', ORGANIZATIONAL_UNIT],
    ['snapshotAccounts', '222222222222'],
  ] as const)('sharing.%s naming %s twice is refused', (field, value) => {
    expect(synthError({ sharing: { [field]: [value, value] } })).toContain(`sharing.${field} names ${value} twice: give each only once.`);
  });

  test('an organization ARN of another partition than the stack\'s is refused; the stack\'s partition is accepted', () => {
    const shared = (region: string, arn: string) => {
      try {
        new MirageUnikernelAmi(newStack({ region }), 'Hello', helloProps({ sharing: { organizationArns: [arn] } }));
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(shared('us-gov-west-1', ORGANIZATION)).toContain(`sharing.organizationArns contains ${ORGANIZATION}, of partition aws, but the stack deploys to partition aws-us-gov`);
    expect(shared('us-gov-west-1', ORGANIZATION.replace('arn:aws:', 'arn:aws-us-gov:'))).toBeUndefined();
    expect(shared('eu-west-1', ORGANIZATION)).toBeUndefined();
  });

  test.each([
    { accounts: ['111111111111'] },
    { organizationArns: [ORGANIZATION] },
    { organizationalUnitArns: [ORGANIZATIONAL_UNIT] },
    { snapshotAccounts: ['111111111111'] },
  ])('sharing %j of an AMI under the AWS managed key is refused, saying what a customer managed key needs', (sharing) => {
    const message = synthError({ encryption: true, sharing });
    expect(message).toContain('encrypted with the AWS managed key (encryption: true without encryptionKey), which EC2 cannot share');
    expect(message).toContain('Give encryptionKey a customer managed KMS key whose key policy lets the accounts you share with use it');
    expect(message).toContain('docs/distribution.md');
  });

  test('public launch of an encrypted AMI is refused', () => {
    expect(synthError((stack) => ({ encryptionKey: new kms.Key(stack, 'Key'), sharing: { publicLaunch: true } })))
      .toContain('sharing.publicLaunch is true, but the AMI is encrypted (encryption or encryptionKey): EC2 does not make an AMI with encrypted snapshots public');
  });

  test.each([Duration.seconds(59), Duration.seconds(0)])('deprecateAfter %s (under a minute) is refused', (deprecateAfter) => {
    expect(synthError({ deprecateAfter })).toMatch(/deprecateAfter is .* seconds\): give whole seconds, at least 1 minute and at most 3650 days/);
  });

  test('deprecateAfter of a fraction of a second is refused', () => {
    expect(synthError({ deprecateAfter: Duration.millis(90500) })).toContain('(90.5 seconds): give whole seconds');
  });

  test('deprecateAfter beyond 10 years (3650 days) is refused; 3650 days is accepted', () => {
    expect(synthError({ deprecateAfter: DEPRECATE_AFTER_MAX.plus(Duration.seconds(1)) }))
      .toContain('at most 3650 days: EC2 accepts a deprecation time at most 10 years ahead');
    expect(propertiesOf({ deprecateAfter: DEPRECATE_AFTER_MAX }).DeprecateAfterSeconds).toBe(String(3650 * 86400));
  });

  test('deprecateAfter beyond 2 years (730 days) of a public AMI is refused', () => {
    expect(synthError({ sharing: { publicLaunch: true }, deprecateAfter: DEPRECATE_AFTER_MAX_PUBLIC.plus(Duration.minutes(1)) }))
      .toContain('at most 730 days for a public AMI (sharing.publicLaunch): EC2 deprecates a public AMI at most 2 years after its creation');
  });

  test('the cooldown without the protection is refused', () => {
    expect(synthError({ deregistrationProtectionCooldown: true, removalPolicy: RemovalPolicy.RETAIN }))
      .toContain('deregistrationProtectionCooldown is true, but deregistrationProtection is not');
  });

  test('the cooldown with RemovalPolicy.DESTROY is refused, saying why', () => {
    const message = synthError({ deregistrationProtection: true, deregistrationProtectionCooldown: true });
    expect(message).toContain('deregistrationProtectionCooldown needs removalPolicy RemovalPolicy.RETAIN');
    expect(message).toContain('24 hours after the protection is turned off, longer than CloudFormation waits for a custom resource (1 hour)');
  });

  test.each([
    ['unikernels/web/image-id', 'has a path but does not begin with "/"'],
    ['/unikernels//image-id', 'has an empty level (two slashes in a row, or one at the end)'],
    ['/unikernels/web/', 'has an empty level'],
    ['', 'is empty'],
    ['/', 'is empty'],
    ['image id', 'contains " ", which Systems Manager does not allow'],
    ['/unikernels/wéb:1', 'contains "é", ":", which Systems Manager does not allow'],
    [`/${Array.from({ length: 16 }, (_, i) => `l${i}`).join('/')}`, 'has 16 levels'],
    ['aws-image-id', 'begins with "aws" or "ssm"'],
    ['/SSM/image-id', 'begins with "aws" or "ssm"'],
    [`/${'p'.repeat(1000)}`, 'makes a parameter ARN of 1057 characters (counting the longest partition and region, aws-us-gov and ap-southeast-7, where the stack\'s are unknown), and Systems Manager allows 1011'],
  ])('imageIdParameterName %j is refused: %s', (imageIdParameterName, problem) => {
    const message = synthError({ imageIdParameterName });
    expect(message).toContain(`imageIdParameterName ${JSON.stringify(imageIdParameterName)} ${problem}`);
    expect(message).toContain('e.g. /unikernels/hello/image-id');
  });

  test.each(['hello-image-id', '/unikernels/hello/image_id.v1', `/${Array.from({ length: 15 }, (_, i) => `l${i}`).join('/')}`])(
    'imageIdParameterName %j is accepted', (imageIdParameterName) => {
      expect(synthError({ imageIdParameterName })).toBeUndefined();
    });

  test('the ARN length counts the stack\'s region where it is known', () => {
    // 1011 - 'arn:aws:ssm:eu-west-1:123456789012:parameter/'.length = 966 characters of name after the slash.
    const name = `/${'p'.repeat(966)}`;
    const inRegion = (imageIdParameterName: string) => {
      const stack = newStack({ account: '123456789012', region: 'eu-west-1' });
      try {
        new MirageUnikernelAmi(stack, 'Hello', helloProps({ imageIdParameterName }));
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(inRegion(name)).toBeUndefined();
    expect(inRegion(`${name}p`)).toContain('makes a parameter ARN of 1012 characters');
  });
});

describe('tokens are left to the deployment', () => {
  test('a name, description, parameter name and deprecation from tokens are passed through unchecked', () => {
    const stack = newStack();
    const text = new CfnParameter(stack, 'Text', { type: 'String' }).valueAsString;
    const seconds = new CfnParameter(stack, 'Seconds', { type: 'Number' }).valueAsNumber;
    const properties = propertiesOf({
      imageName: text,
      imageDescription: Lazy.string({ produce: () => '' }),
      imageIdParameterName: text,
      deprecateAfter: Duration.seconds(seconds),
    }, stack);
    expect(properties).toMatchObject({ ImageName: { Ref: 'Text' }, ImageDescription: '', DeprecateAfterSeconds: { Ref: 'Seconds' } });
    Template.fromStack(stack).hasResourceProperties('AWS::SSM::Parameter', { Name: { Ref: 'Text' } });
  });

  test('sharing lists from tokens, and token elements beside checked ones, are passed through', () => {
    const stack = newStack();
    const accounts = new CfnParameter(stack, 'Accounts', { type: 'CommaDelimitedList' }).valueAsList;
    const one = new CfnParameter(stack, 'One', { type: 'String' }).valueAsString;
    const properties = propertiesOf({ sharing: { accounts, snapshotAccounts: [one, '111111111111'] } }, stack);
    expect(properties.Sharing).toEqual({ Accounts: { Ref: 'Accounts' }, SnapshotAccounts: [{ Ref: 'One' }, '111111111111'] });
  });
});
