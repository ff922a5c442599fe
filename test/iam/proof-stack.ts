/**
 * The stack the IAM proof judges: every option that shapes the handler's and the helper's
 * permissions (both strategies, a customer managed key for each, two helper types in two VPCs,
 * several volume sizes, a kernel asset and a versioned kernel in a bucket of the user's), synthesized
 * as `UnikernelStack` and resolved for one deployment.
 */
import { App, Size, Stack, Tags } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { BuildStrategy, MirageUnikernelAmi, UnikernelKernel } from '../../lib';
import { UnikernelAmiProperties } from '../../lib/unikernel-ami/types';
import { PV_X86_64_KERNEL } from '../fixtures/construct';
import { HELPER_ROOT_DEVICE } from '../fixtures/fake-aws/ec2';
import { AuthorizationEnvironment } from './request-authorizations';
import { RolePolicies, rolePolicies } from './role-policies';
import { PROOF_ENVIRONMENT, RESOLVED_AL2023_IMAGE, TemplateResolver } from './template-resolver';

/** The unikernels of the proof stack, by construct id. */
export const PROOF_UNIKERNELS = ['HelperEncrypted', 'HelperT1', 'DirectEncrypted', 'DirectFromBucket'] as const;
export type ProofUnikernel = typeof PROOF_UNIKERNELS[number];

export const KERNEL_BUCKET_KEY = 'kernels/hello.xen';
export const KERNEL_BUCKET_VERSION = '3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY';

/** A synthesized stack resolved for the deployment, with its roles' policies. */
export interface ResolvedStack {
  readonly resolver: TemplateResolver;
  readonly handler: RolePolicies;
  /** The helper instance's role; absent when no unikernel of the stack builds with a helper. */
  readonly helper?: RolePolicies;
  readonly authorization: AuthorizationEnvironment;
}

export interface Proof extends ResolvedStack {
  /** Each unikernel's custom-resource properties as the handler receives them in this deployment. */
  readonly properties: { readonly [id in ProofUnikernel]: UnikernelAmiProperties };
  /** Each unikernel's custom resource's logical id. */
  readonly logicalIds: { readonly [id in ProofUnikernel]: string };
}

export function synthesizeProofStack(options: { minimizePolicies: boolean }): Proof {
  const app = new App({ context: { '@aws-cdk/aws-iam:minimizePolicies': options.minimizePolicies } });
  const stack = new Stack(app, PROOF_ENVIRONMENT.stackName);
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const otherVpc = new ec2.Vpc(stack, 'OtherVpc', { natGateways: 1, maxAzs: 1 });
  const kernels = s3.Bucket.fromBucketName(stack, 'Kernels', 'my-unikernel-kernels');
  const kernel = UnikernelKernel.fromFile(PV_X86_64_KERNEL);
  const unikernels = [
    new MirageUnikernelAmi(stack, 'HelperEncrypted', { kernel, name: 'helper', encryptionKey: key }),
    new MirageUnikernelAmi(stack, 'HelperT1', {
      kernel,
      name: 'helper-t1',
      volumeSize: Size.gibibytes(2),
      buildStrategy: BuildStrategy.helperInstance({ instanceType: new ec2.InstanceType('t1.micro'), vpc: otherVpc }),
      instances: { count: 1 },
    }),
    new MirageUnikernelAmi(stack, 'DirectEncrypted', { kernel, name: 'direct', encryptionKey: key, buildStrategy: BuildStrategy.ebsDirect() }),
    new MirageUnikernelAmi(stack, 'DirectFromBucket', {
      kernel: UnikernelKernel.fromBucket(kernels, KERNEL_BUCKET_KEY, KERNEL_BUCKET_VERSION),
      name: 'direct-s3',
      volumeSize: Size.gibibytes(3),
      buildStrategy: BuildStrategy.ebsDirect(),
    }),
  ];
  Tags.of(stack).add('project', 'unikernels');
  const { resolved, properties, logicalIds } = resolveStack(stack, unikernels);
  return { ...resolved, properties: properties as Proof['properties'], logicalIds: logicalIds as Proof['logicalIds'] };
}

/** A stack of one unikernel, `Switched`, and its custom resource's logical id. */
export interface SwitchedStack extends ResolvedStack {
  readonly properties: UnikernelAmiProperties;
  readonly logicalId: string;
}

/**
 * A stack (the proof stack's name) of one unikernel `Switched`, built with a helper instance or
 * with the EBS direct APIs: the same stack before and after a user switched its strategy. After the
 * switch, its handler role has no helper permissions any more.
 */
export function synthesizeSwitchedStack(strategy: 'helper' | 'direct'): SwitchedStack {
  const stack = new Stack(new App(), PROOF_ENVIRONMENT.stackName);
  const unikernel = new MirageUnikernelAmi(stack, 'Switched', {
    kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL),
    name: 'switched',
    buildStrategy: strategy === 'helper' ? BuildStrategy.helperInstance() : BuildStrategy.ebsDirect(),
  });
  const { resolved, properties, logicalIds } = resolveStack(stack, [unikernel]);
  return { ...resolved, properties: properties.Switched, logicalId: logicalIds.Switched };
}

interface ResolvedUnikernels {
  readonly resolved: ResolvedStack;
  readonly properties: { [id: string]: UnikernelAmiProperties };
  readonly logicalIds: { [id: string]: string };
}

function resolveStack(stack: Stack, unikernels: MirageUnikernelAmi[]): ResolvedUnikernels {
  const template = Template.fromStack(stack).toJSON();
  const resolver = new TemplateResolver(template as never);
  const logicalIds = Object.fromEntries(unikernels.map((unikernel) =>
    [unikernel.node.id, stack.getLogicalId(unikernel.node.findChild('Resource').node.defaultChild as never)]));
  const properties = Object.fromEntries(unikernels.map((unikernel) => {
    const { ServiceToken: _token, ServiceTimeout: _timeout, ...resolvedProperties } = resolver.resolve(template.Resources[logicalIds[unikernel.node.id]].Properties);
    return [unikernel.node.id, resolvedProperties as UnikernelAmiProperties];
  }));
  const profiles = resolver.resourcesOfType('AWS::IAM::InstanceProfile');
  const instanceProfileRoles = Object.fromEntries(Object.entries(profiles).map(([id, profile]) => [
    resolver.resolve({ 'Fn::GetAtt': [id, 'Arn'] }),
    `arn:${PROOF_ENVIRONMENT.partition}:iam::${PROOF_ENVIRONMENT.account}:role/${profile.Roles[0]}`,
  ]));
  const hasHelper = Object.keys(template.Resources).some((id) => id.startsWith('MirageUnikernelAmiBuildInfrastructureHelperRole'));
  return {
    resolved: {
      resolver,
      handler: rolePolicies(resolver, 'MirageUnikernelAmiBuildInfrastructureHandlerRole'),
      helper: hasHelper ? rolePolicies(resolver, 'MirageUnikernelAmiBuildInfrastructureHelperRole') : undefined,
      authorization: {
        ...PROOF_ENVIRONMENT,
        instanceProfileRoles,
        // The template's helper image is AL2023 (as the fake account has it, from what AWS publishes).
        imageRootVolumes: { [RESOLVED_AL2023_IMAGE]: { deviceName: HELPER_ROOT_DEVICE.deviceName, sizeGiB: HELPER_ROOT_DEVICE.size, volumeType: HELPER_ROOT_DEVICE.volumeType } },
      },
    },
    properties,
    logicalIds,
  };
}
