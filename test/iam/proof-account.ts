/**
 * The fake AWS account (test/fixtures/fake-aws) as the proof's deployment of a template has it: the
 * fake starts with fixed ids of its own (a subnet, the AL2023 image, an instance profile, a staging
 * bucket); the proof's requests must name the template's resolved ids instead, or the policies would
 * be judged against resources the template never made. So the account also gets every subnet,
 * instance profile and bucket the resolved template creates, the AL2023 image its SSM parameter
 * resolves to, and the kernel objects its unikernels read.
 */
import { UnikernelAmiProperties } from '../../lib/unikernel-ami/types';
import { FakeAws } from '../fixtures/fake-aws';
import { HELPER_IMAGE_ID } from '../fixtures/custom-resource';
import { ResolvedStack } from './proof-stack';
import { RESOLVED_AL2023_IMAGE } from './template-resolver';

/** Adds what the resolved template creates (and what its parameters name) to a freshly reset account. */
export function addTemplateResources(aws: FakeAws, stack: ResolvedStack): void {
  const { resolver } = stack;
  const helperImage = aws.world.images.get(HELPER_IMAGE_ID)!;
  // The same public AL2023 image, under the id the template's SSM parameter resolves to here.
  aws.addPublicImage(RESOLVED_AL2023_IMAGE, helperImage.name, helperImage.architecture, helperImage.virtualizationType);
  for (const [logicalId, subnet] of Object.entries(resolver.resourcesOfType('AWS::EC2::Subnet'))) {
    aws.world.subnets.set(resolver.resolve({ Ref: logicalId }), subnet.AvailabilityZone);
  }
  for (const logicalId of Object.keys(resolver.resourcesOfType('AWS::IAM::InstanceProfile'))) {
    aws.world.instanceProfiles.set(resolver.resolve({ 'Fn::GetAtt': [logicalId, 'Arn'] }), aws.clock.now());
  }
  for (const logicalId of Object.keys(resolver.resourcesOfType('AWS::S3::Bucket'))) {
    aws.world.buckets.set(resolver.resolve({ Ref: logicalId }), new Map());
  }
}

/** Puts a unikernel's kernel where its properties say (the kernel asset, or the user's versioned object). */
export function putKernel(aws: FakeAws, properties: UnikernelAmiProperties, kernel: Uint8Array): void {
  aws.putObject(properties.KernelBucket, properties.KernelKey, kernel, properties.KernelObjectVersion);
}

/** The objects left in the buckets the template creates (the staging bucket): none once a lifecycle is over. */
export function objectsLeft(aws: FakeAws, stack: ResolvedStack): string[] {
  const { resolver } = stack;
  return Object.keys(resolver.resourcesOfType('AWS::S3::Bucket')).flatMap((logicalId) => {
    const bucket = resolver.resolve({ Ref: logicalId });
    // The fake keeps every version of an object besides it (`key?versionId=`); the bucket is not versioned.
    return [...(aws.world.buckets.get(bucket)?.keys() ?? [])].filter((key) => !key.includes('?versionId=')).map((key) => `s3://${bucket}/${key}`);
  });
}
