/**
 * An account may turn on EBS encryption by default, with a customer managed KMS key as the default
 * key. Every volume and snapshot the build creates without a key of its own is then encrypted with
 * that key, and EC2 (or EBS direct) uses it on the handler's behalf: without the handler role's
 * permission on the key, RunInstances or StartSnapshot fails later with an opaque error (an
 * instance that terminates at once with Client.InternalError, or an AccessDenied of StartSnapshot).
 *
 * So onEvent asks first, before it creates anything, and fails with a message that names the key
 * and the construct prop that grants it (`encryptionKey`). An AWS managed key (alias/aws/ebs) needs
 * no grant: the account's principals may use it through EC2.
 *
 * Which of the build's volumes and snapshots get the default key ("Amazon EBS encryption": a create
 * call without a KMS key uses the default key if it encrypts, and it encrypts if asked to or if
 * encryption by default is on):
 * - helper build: the helper's root volume (its mapping names no key) whenever encryption by
 *   default is on; the data volume when it is encrypted without `encryptionKey`.
 * - EBS direct: the snapshot, when it is encrypted (asked for, or by default) without `encryptionKey`.
 */
import { EC2Client, GetEbsDefaultKmsKeyIdCommand, GetEbsEncryptionByDefaultCommand } from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { BuildStrategyKind } from '../types';
import { BuildFailure } from './failure';
import { BuildSpec, isShared } from './properties';
import { withRetry } from './retry';

/** The alias of the AWS managed key for EBS, which GetEbsDefaultKmsKeyId names when no other key is set. */
const AWS_MANAGED_EBS_ALIAS = 'alias/aws/ebs';

/** Whether any volume or snapshot of the build is encrypted with the account's default EBS key. */
export function usesDefaultKey(spec: BuildSpec, encryptionByDefault: boolean): boolean {
  const ownKey = spec.encrypted && spec.kmsKeyArn !== undefined;
  if (spec.strategy === BuildStrategyKind.HELPER_INSTANCE) {
    // The root volume has no key of its own; the data volume has one only with encryptionKey.
    return encryptionByDefault || (spec.encrypted && !ownKey);
  }
  return (encryptionByDefault || spec.encrypted) && !ownKey;
}

/** Whether the AMI's own snapshot is encrypted with the account's default EBS key. */
export function snapshotUsesDefaultKey(spec: BuildSpec, encryptionByDefault: boolean): boolean {
  return (encryptionByDefault || spec.encrypted) && !(spec.encrypted && spec.kmsKeyArn !== undefined);
}

/**
 * Fails the build, before anything is created, if it would encrypt with a customer managed default
 * key the handler was not granted (the construct's `encryptionKey`), or if it is to be shared and
 * its snapshot would be encrypted with the AWS managed key (which EC2 does not share; the construct
 * cannot know at synth when the account's encryption by default decides it).
 */
export async function checkDefaultEncryptionKey(aws: { readonly ec2: EC2Client; readonly kms: KMSClient }, spec: BuildSpec): Promise<void> {
  const byDefault = (await withRetry('ec2:GetEbsEncryptionByDefault', () => aws.ec2.send(new GetEbsEncryptionByDefaultCommand({})))).EbsEncryptionByDefault === true;
  if (!usesDefaultKey(spec, byDefault)) {
    return;
  }
  const defaultKey = (await withRetry('ec2:GetEbsDefaultKmsKeyId', () => aws.ec2.send(new GetEbsDefaultKmsKeyIdCommand({})))).KmsKeyId;
  const sharedOnDefaultKey = isShared(spec.sharing) && snapshotUsesDefaultKey(spec, byDefault);
  if (defaultKey === undefined || isAwsManagedAlias(defaultKey)) {
    refuseSharingOnAwsManagedKey(sharedOnDefaultKey, byDefault);
    return;
  }
  if (defaultKey === spec.kmsKeyArn) {
    return;
  }
  const key = await describeKey(aws.kms, defaultKey);
  if (key?.manager === 'AWS') {
    refuseSharingOnAwsManagedKey(sharedOnDefaultKey, byDefault);
    return;
  }
  if (key !== undefined && key.arn === spec.kmsKeyArn) {
    return;
  }
  const named = key !== undefined && key.arn !== defaultKey ? `${defaultKey} (${key.arn})` : defaultKey;
  const uses = spec.strategy === BuildStrategyKind.HELPER_INSTANCE
    ? (byDefault ? 'the helper instance\'s volumes' : 'the helper\'s data volume')
    : 'the snapshot';
  throw new BuildFailure(
    `This account's EBS ${byDefault ? 'encryption by default' : 'default key'} in this region uses the customer managed KMS key ${named}` +
      `${key === undefined ? ' (the handler may not even describe it)' : ''}, which would encrypt ${uses}, but the build's handler may not use it. ` +
      'Give the construct that key as its encryptionKey prop (e.g. kms.Key.fromKeyArn(this, \'EbsDefaultKey\', \'<key ARN>\')), ' +
      'which grants the handler its use, and make sure the key policy lets the account\'s IAM policies grant it.',
  );
}

/** The failure of sharing an AMI encrypted with the AWS managed key. */
export function unsharableKeyMessage(why: string): string {
  return `Cannot share the AMI: its ${why}, and EC2 does not share AMIs encrypted with the AWS managed key (alias/aws/ebs). ` +
    'Give the construct a customer managed encryptionKey whose key policy lets the target accounts use it, or do not share the AMI.';
}

function refuseSharingOnAwsManagedKey(shared: boolean, byDefault: boolean): void {
  if (shared) {
    throw new BuildFailure(unsharableKeyMessage(`snapshot would be encrypted with the AWS managed key alias/aws/ebs (${byDefault ? 'this account\'s EBS encryption by default' : 'encryption without an encryptionKey'})`));
  }
}

/** `alias/aws/ebs`, or its alias ARN. */
export function isAwsManagedAlias(keyId: string): boolean {
  return keyId === AWS_MANAGED_EBS_ALIAS || keyId.endsWith(`:${AWS_MANAGED_EBS_ALIAS}`);
}

/** The key an id, ARN or alias names; undefined if the handler may not describe it (another account's key, or a key policy that does not allow it). */
export async function describeKey(kms: KMSClient, keyId: string): Promise<{ arn?: string; manager?: string } | undefined> {
  try {
    const metadata = (await withRetry('kms:DescribeKey', () => kms.send(new DescribeKeyCommand({ KeyId: keyId })))).KeyMetadata;
    return { arn: metadata?.Arn, manager: metadata?.KeyManager };
  } catch (err) {
    if ((err as Error).name === 'AccessDeniedException') {
      return undefined;
    }
    throw err;
  }
}
