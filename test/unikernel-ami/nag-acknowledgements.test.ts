/**
 * cdk-nag's AwsSolutions pack over what the library creates: with cdk-nag 3 (acknowledgements in the
 * Validations metadata, run with validateScope as its README says for tests) and cdk-nag 2
 * (`cdk_nag` CloudFormation metadata, run as an aspect), over a stack with every option and over
 * the example app. Any finding on a library resource that is not acknowledged fails.
 */
import { App, Aspects, CfnResource, Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as nag3 from 'cdk-nag';
import * as nag2 from 'cdk-nag-v2';
import { IConstruct } from 'constructs';
import { BuildStrategy, DiskLayout, MirageUnikernelAmi, UnikernelKernel } from '../../lib';
import { acknowledgeNagRule, wildcardResourceFinding } from '../../lib/unikernel-ami/nag-acknowledgements';
import { withExampleApp } from '../fixtures/example-app';
import { PV_X86_64_KERNEL } from '../fixtures/construct';

/** Constructs of the test itself (a user's own VPC, key and bucket), not of the library. */
const USER_CONSTRUCTS = ['UserVpc', 'UserKey'];

/** A stack with every option of the library. */
function everyOption(app: App): Stack {
  const stack = new Stack(app, 'EveryOption', { env: { account: '123456789012', region: 'eu-west-1' } });
  const key = new kms.Key(stack, 'UserKey', { enableKeyRotation: true });
  const vpc = new ec2.Vpc(stack, 'UserVpc', { maxAzs: 1, natGateways: 1 });
  const kernel = UnikernelKernel.fromFile(PV_X86_64_KERNEL);
  new MirageUnikernelAmi(stack, 'Defaults', { kernel, name: 'defaults', instances: {} });
  const everything = new MirageUnikernelAmi(stack, 'Everything', {
    kernel,
    name: 'everything',
    kernelArgs: '--ipv4=10.0.0.2/24',
    layout: DiskLayout.MBR_PARTITION,
    volumeSize: Size.gibibytes(2),
    encryptionKey: key,
    removalPolicy: RemovalPolicy.RETAIN,
    buildStrategy: BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType('t1.micro'), vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS } }),
    instances: { count: 2, instanceType: new ec2.InstanceType('m3.medium'), vpc, detailedMonitoring: true, terminationProtection: true, encryptRootVolume: true },
    imageName: 'everything (prod)',
    imageDescription: 'Every option',
    sharing: {
      accounts: ['111111111111'],
      organizationArns: ['arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5'],
      organizationalUnitArns: ['arn:aws:organizations::111122223333:ou/o-a1b2c3d4e5/ou-ab12-cd34ef56'],
      snapshotAccounts: ['111111111111'],
    },
    deprecateAfter: Duration.days(365),
    deregistrationProtection: true,
    deregistrationProtectionCooldown: true,
    imageIdParameterName: '/unikernels/everything/image-id',
  });
  // A role of the stack that grantLaunch gives the image and its key: its policy is the library's statements.
  everything.grantLaunch(new iam.Role(stack, 'Launcher', { assumedBy: new iam.AccountRootPrincipal() }));
  new MirageUnikernelAmi(stack, 'Direct', {
    kernel: UnikernelKernel.fromBucket(s3.Bucket.fromBucketName(stack, 'UserKernels', 'my-kernels'), 'hello.xen', 'v1'),
    name: 'direct',
    encryption: true,
    buildStrategy: BuildStrategy.ebsDirect(),
    instances: { encryptRootVolume: true },
  });
  return stack;
}

function isLibraryResource(path: string): boolean {
  return !USER_CONSTRUCTS.some((user) => path.includes(`/${user}/`));
}

/** cdk-nag 3's findings: rule id (with finding) and construct path. */
function findingsV3(scope: IConstruct, pack: nag3.AwsSolutionsChecks): string[] {
  return pack.validateScope(scope).violations.flatMap((violation) => violation.violatingResources.map((resource) => `${violation.ruleName} on ${resource.constructPath}`));
}

interface V2Result {
  readonly findings: string[];
  readonly suppressed: string[];
}

/** cdk-nag 2's findings and acknowledged (suppressed) findings, from a logger of its own. */
function findingsV2(app: App, nag: typeof nag2): V2Result {
  const findings: string[] = [];
  const suppressed: string[] = [];
  const id = (data: { ruleId: string; findingId?: string }) => `${data.ruleId}${data.findingId ? `[${data.findingId}]` : ''}`;
  const logger = {
    onCompliance: () => undefined,
    onNotApplicable: () => undefined,
    onNonCompliance: (data: nag2.NagLoggerNonComplianceData) => findings.push(`${id(data)} on ${data.resource.node.path}`),
    onError: (data: nag2.NagLoggerErrorData) => findings.push(`${data.ruleId} failed on ${data.resource.node.path}: ${data.errorMessage}`),
    onSuppressed: (data: nag2.NagLoggerSuppressedData) => suppressed.push(`${id(data)} on ${data.resource.node.path}`),
    onSuppressedError: (data: nag2.NagLoggerSuppressedErrorData) => findings.push(`${data.ruleId} failed (acknowledged) on ${data.resource.node.path}`),
  };
  Aspects.of(app).add(new nag.AwsSolutionsChecks({ reports: false, additionalLoggers: [logger] }));
  app.synth();
  return { findings, suppressed };
}

let everyOptionV2: ({ readonly stack: Stack } & V2Result) | undefined;

/**
 * The stack with every option, synthesized with cdk-nag 2's aspect. Two tests read its findings and
 * its acknowledgements and neither changes it, so it is built and synthesized once; the aspect adds
 * no acknowledgement, so those read after the synth are the ones the library wrote.
 */
function everyOptionCheckedByV2(): { readonly stack: Stack } & V2Result {
  if (everyOptionV2 === undefined) {
    const app = new App();
    const stack = everyOption(app);
    everyOptionV2 = { stack, ...findingsV2(app, nag2) };
  }
  return everyOptionV2;
}

describe('acknowledgements both cdk-nag versions read', () => {
  function bucketAndPolicy(): { app: App; stack: Stack; bucket: CfnResource; policy: iam.CfnPolicy } {
    const app = new App();
    const stack = new Stack(app, 'Acknowledged');
    const bucket = new s3.Bucket(stack, 'Bucket', { enforceSSL: true, blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL });
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['ec2:DescribeImages'], resources: ['*'] }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['ec2:DeleteSnapshot'], resources: [stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot/*' })] }));
    const policy = role.node.findChild('DefaultPolicy').node.defaultChild as iam.CfnPolicy;
    return { app, stack, bucket: bucket.node.defaultChild as CfnResource, policy };
  }

  test('without them both versions report the findings; with them neither does, and only the findings acknowledged', () => {
    const snapshotArn = (stack: Stack) => stack.formatArn({ service: 'ec2', account: '', resource: 'snapshot/*' });
    const plain = bucketAndPolicy();
    const expected = [
      'AwsSolutions-S1 on Acknowledged/Bucket/Resource',
      'AwsSolutions-IAM5[Resource::*] on Acknowledged/Role/DefaultPolicy/Resource',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*] on Acknowledged/Role/DefaultPolicy/Resource',
    ];
    expect(findingsV3(plain.stack, new nag3.AwsSolutionsChecks()).sort()).toEqual([...expected].sort());
    expect(findingsV2(plain.app, nag2).findings.sort()).toEqual([...expected].sort());

    for (const version of ['3', '2']) {
      const acknowledged = bucketAndPolicy();
      acknowledgeNagRule(acknowledged.bucket, 'AwsSolutions-S1', 'Transient staging bucket, audited with CloudTrail.');
      acknowledgeNagRule(acknowledged.policy, 'AwsSolutions-IAM5', 'Describe calls take no resource.', [wildcardResourceFinding(acknowledged.policy, '*')]);
      if (version === '3') {
        expect(findingsV3(acknowledged.stack, new nag3.AwsSolutionsChecks())).toEqual([expected[2]]);
      } else {
        const result = findingsV2(acknowledged.app, nag2);
        expect(result.findings).toEqual([expected[2]]);
        expect(result.suppressed.sort()).toEqual([expected[0], expected[1]].sort());
      }
    }
    // The finding cdk-nag computes for an ARN is the one acknowledgements name.
    expect(wildcardResourceFinding(plain.policy, snapshotArn(plain.stack))).toBe('Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*');
  });

  test('a reason cdk-nag 2 would refuse or garble is refused at once', () => {
    const { bucket } = bucketAndPolicy();
    expect(() => acknowledgeNagRule(bucket, 'AwsSolutions-S1', 'too short')).toThrow(/at least 10 printable ASCII/);
    expect(() => acknowledgeNagRule(bucket, 'AwsSolutions-S1', 'a reason with a non-ASCII dash \u2014 here')).toThrow(/printable ASCII/);
  });
});

describe('a stack with every option', () => {
  test('cdk-nag 3 finds nothing unacknowledged on the library\'s resources', () => {
    const stack = everyOption(new App());
    const findings = findingsV3(stack, new nag3.AwsSolutionsChecks());
    expect(findings.filter((finding) => isLibraryResource(finding))).toEqual([]);
    // The check ran: the user's own VPC, which has no flow logs, is reported.
    expect(findings).toContain('AwsSolutions-VPC7 on EveryOption/UserVpc/Resource');
  });

  test('cdk-nag 2 finds nothing unacknowledged on the library\'s resources, and the acknowledgements are what keeps it so', () => {
    const { findings, suppressed } = everyOptionCheckedByV2();
    expect(findings.filter((finding) => isLibraryResource(finding))).toEqual([]);
    expect(findings).toContain('AwsSolutions-VPC7 on EveryOption/UserVpc/Resource');
    const rules = new Set(suppressed.map((finding) => /^(AwsSolutions-[A-Z0-9]+)/.exec(finding)![1]));
    // EC26/EC28/EC29 only on the instances left at their defaults; the Everything instances turn all three on.
    expect([...rules].sort()).toEqual(['AwsSolutions-EC26', 'AwsSolutions-EC28', 'AwsSolutions-EC29', 'AwsSolutions-IAM5', 'AwsSolutions-L1', 'AwsSolutions-S1', 'AwsSolutions-SF2', 'AwsSolutions-VPC7']);
    expect(suppressed.filter((finding) => finding.includes('/Everything/'))).toEqual([]);
  });
});

describe('the acknowledgements are exact', () => {
  test('each one names a finding cdk-nag 2 reports (and suppresses): none is left over from a statement that changed', () => {
    const { stack, suppressed } = everyOptionCheckedByV2();
    const acknowledged = stack.node.findAll()
      .filter((construct): construct is CfnResource => CfnResource.isCfnResource(construct) && isLibraryResource(`${construct.node.path}/`))
      .flatMap((resource) => ((resource.getMetadata('cdk_nag')?.rules_to_suppress ?? []) as { id: string; applies_to?: string[] }[])
        .flatMap(({ id, applies_to: findings }) => (findings ?? [undefined]).map((finding) => `${id}${finding ? `[${finding}]` : ''} on ${resource.node.path}`)));
    expect(acknowledged.length).toBeGreaterThan(20);
    expect(acknowledged.filter((finding) => !suppressed.includes(finding))).toEqual([]);
  });
});

describe('the example app', () => {
  test.each(['helper', 'direct'])('strategy=%s: no finding of cdk-nag 3 or 2 is left unacknowledged', (strategy) => {
    const context = { 'strategy': strategy, '@aws-cdk/aws-iam:minimizePolicies': true };
    // Inside the app's module registry, so that cdk-nag sees the app's aws-cdk-lib classes. One load
    // serves both versions: cdk-nag 3 first, whose validateScope only reads the tree, then cdk-nag 2's
    // aspect and synth, which find what they find on a fresh load (the same findings and templates).
    const { v3, v2 } = withExampleApp(context, (app) => {
      const isolated: typeof nag3 = require('cdk-nag');
      return { v3: findingsV3(app, new isolated.AwsSolutionsChecks()), v2: findingsV2(app, require('cdk-nag-v2')) };
    });
    expect(v3).toEqual([]);
    expect(v2.findings).toEqual([]);
    expect(v2.suppressed.length).toBeGreaterThan(0);
  });
});
