/**
 * grantLaunch proven on AWS's published authorization data: a RunInstances of the AMI, with its
 * encrypted root volume, is mapped to every authorization IAM makes for it (request-authorizations.ts)
 * and judged against the grantee's policies as the template writes them (simulator.ts). What the
 * grant covers, the image and what EC2 asks of its key, is allowed; the rest of a launch (the
 * instance, its volume and network interface, subnet and security group) is the grantee's own to be
 * allowed, and stays denied. Must-deny twins: another image, another key, the key used other than
 * through EC2 of the stack's region, a grant that is not for an AWS resource.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { MirageUnikernelAmi, UnikernelKernel } from '../../lib';
import { PV_ROOT_DEVICE_NAME } from '../../lib/pv-grub';
import { PV_X86_64_KERNEL } from '../fixtures/construct';
import { recorded } from './judge-requests';
import { RequestAuthorizations } from './request-authorizations';
import { PolicyDocument, RolePolicies, rolePolicies } from './role-policies';
import { describe as describeCheck, IamCheck, judge } from './simulator';
import { CfnTemplate, PROOF_ENVIRONMENT, TemplateResolver } from './template-resolver';

/** The id the deployment gives the AMI (the custom resource's ImageId attribute). */
const IMAGE = 'ami-0a1b2c3d4e5f6a7b8';
const OTHER_IMAGE = 'ami-0ffffffffffffff01';
const OTHER_KEY = `arn:aws:kms:${PROOF_ENVIRONMENT.region}:${PROOF_ENVIRONMENT.account}:key/00000000-1111-2222-3333-444444444444`;

interface Deployment {
  readonly launcher: RolePolicies;
  readonly keyArn: string;
  readonly keyPolicy: PolicyDocument;
  readonly authorizations: RequestAuthorizations;
}

let deployment: Deployment;

beforeAll(() => {
  const stack = new Stack(new App(), PROOF_ENVIRONMENT.stackName);
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const ami = new MirageUnikernelAmi(stack, 'Hello', { kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: 'hello', encryptionKey: key });
  ami.grantLaunch(new iam.Role(stack, 'Launcher', { assumedBy: new iam.AccountRootPrincipal() }));
  const template = Template.fromStack(stack).toJSON();
  // The resolver knows no custom resource's attributes: the AMI id is what the deployment returned.
  const amiId = stack.getLogicalId(ami.node.findChild('Resource').node.defaultChild as never);
  const deployed = JSON.parse(JSON.stringify(template).split(JSON.stringify({ 'Fn::GetAtt': [amiId, 'ImageId'] })).join(JSON.stringify(IMAGE))) as CfnTemplate;
  const resolver = new TemplateResolver(deployed);
  const keyId = stack.getLogicalId(key.node.defaultChild as never);
  const rootVolume = { deviceName: PV_ROOT_DEVICE_NAME, sizeGiB: 1, volumeType: 'gp2' };
  deployment = {
    launcher: rolePolicies(resolver, 'Launcher'),
    keyArn: resolver.resolve({ 'Fn::GetAtt': [keyId, 'Arn'] }),
    keyPolicy: resolver.resolve(deployed.Resources[keyId].Properties.KeyPolicy),
    authorizations: new RequestAuthorizations({ ...PROOF_ENVIRONMENT, instanceProfileRoles: {}, imageRootVolumes: { [IMAGE]: rootVolume, [OTHER_IMAGE]: rootVolume } }),
  };
});

/** Every authorization of a launch of `image` whose root volume is encrypted with `keyArn` (as the construct's own instances map it). */
function launch(image: string, keyArn: string): IamCheck[] {
  return deployment.authorizations.of(recorded('ec2', 'RunInstances', {
    ImageId: image,
    InstanceType: 'm3.medium',
    SubnetId: 'subnet-0a1b2c3d4e5f60001',
    SecurityGroupIds: ['sg-0a1b2c3d4e5f60002'],
    MinCount: 1,
    MaxCount: 1,
    MetadataOptions: { HttpTokens: 'required' },
    BlockDeviceMappings: [{ DeviceName: PV_ROOT_DEVICE_NAME, Ebs: { Encrypted: true, KmsKeyId: keyArn } }],
  }));
}

/** The launcher's decision on each check, as `<decision>: <check>`. */
async function decisions(checks: readonly IamCheck[]): Promise<string[]> {
  const results: string[] = [];
  for (const check of checks) {
    // A key of the template has its key policy (the account's principals, as their IAM policies allow); the other key the same.
    const keyPolicy = check.action.startsWith('kms:') ? deployment.keyPolicy : undefined;
    const { decision } = await judge(deployment.launcher, check, PROOF_ENVIRONMENT.account, keyPolicy);
    results.push(`${decision}: ${check.action} ${check.resource}`);
  }
  return results;
}

/** Whether a check is on what grantLaunch covers: an image, or a KMS key. */
function onImageOrKey(check: IamCheck): boolean {
  return check.action.startsWith('kms:') || /:image\//.test(check.resource);
}

test('the image and the key are allowed; the rest of the launch is not granted', async () => {
  const checks = launch(IMAGE, deployment.keyArn);
  const covered = checks.filter(onImageOrKey);
  // The image, and what EBS encryption asks of the key: CreateGrant, GenerateDataKeyWithoutPlaintext, DescribeKey, Decrypt.
  expect(covered.map((check) => check.action).sort()).toEqual(['ec2:RunInstances', 'kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext']);
  expect((await decisions(covered)).filter((decision) => !decision.startsWith('Allowed'))).toEqual([]);
  const rest = checks.filter((check) => !onImageOrKey(check));
  expect(rest.length).toBeGreaterThanOrEqual(5);
  expect((await decisions(rest)).filter((decision) => decision.startsWith('Allowed'))).toEqual([]);
});

test('must deny: another image', async () => {
  const image = launch(OTHER_IMAGE, deployment.keyArn).filter((check) => /:image\//.test(check.resource));
  expect(image).toHaveLength(1);
  expect(await decisions(image)).toEqual([`ImplicitlyDenied: ec2:RunInstances arn:aws:ec2:${PROOF_ENVIRONMENT.region}::image/${OTHER_IMAGE}`]);
});

test('must deny: another key', async () => {
  const key = launch(IMAGE, OTHER_KEY).filter((check) => check.action.startsWith('kms:'));
  expect(key).toHaveLength(4);
  expect((await decisions(key)).filter((decision) => !decision.startsWith('ImplicitlyDenied'))).toEqual([]);
});

test('must deny: the key used other than through EC2 of the stack\'s region', async () => {
  const key = launch(IMAGE, deployment.keyArn).filter((check) => check.action.startsWith('kms:'));
  for (const service of [`ec2.eu-west-1.${PROOF_ENVIRONMENT.urlSuffix}`, `s3.${PROOF_ENVIRONMENT.region}.${PROOF_ENVIRONMENT.urlSuffix}`]) {
    const elsewhere = key.map((check) => ({ ...check, context: { ...check.context, 'kms:ViaService': service } }));
    expect((await decisions(elsewhere)).filter((decision) => !decision.startsWith('ImplicitlyDenied'))).toEqual([]);
  }
  // Without kms:ViaService (a direct call to KMS) too.
  const direct = key.map((check) => {
    const { 'kms:ViaService': _via, ...context } = check.context;
    return { ...check, context };
  });
  expect((await decisions(direct)).filter((decision) => !decision.startsWith('ImplicitlyDenied'))).toEqual([]);
});

test('must deny: a grant that is not for an AWS resource', async () => {
  const createGrant = launch(IMAGE, deployment.keyArn).filter((check) => check.action === 'kms:CreateGrant');
  expect(createGrant).toHaveLength(1);
  const forAnyone = { ...createGrant[0], context: { ...createGrant[0].context, 'kms:GrantIsForAWSResource': 'false' } };
  expect(await decisions([forAnyone])).toEqual([`ImplicitlyDenied: kms:CreateGrant ${deployment.keyArn}`]);
  expect(describeCheck(forAnyone)).toContain('GrantIsForAWSResource');
});
