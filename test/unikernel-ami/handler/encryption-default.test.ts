/**
 * The check of the account's EBS encryption by default (handler/encryption-default.ts), on the fake
 * account: a build that would encrypt with a customer managed default key the handler was not
 * granted fails in onEvent, before it creates anything, naming the key and the prop that grants it.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { onEvent } from '../../../lib/unikernel-ami/handler/index';
import { UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import {
  createEvent,
  ebsDirectProperties,
  helperInstanceProperties,
  KERNEL_BUCKET,
  KERNEL_KEY,
  KERNEL_VERSION,
  REGION,
  STAGING_BUCKET,
} from '../../fixtures/custom-resource';
import { useFakeAws } from '../../fixtures/fake-aws';
import { completeRequest } from '../../fixtures/lifecycle';

process.env.AWS_REGION = REGION;
const KERNEL = readFileSync(join(__dirname, '../../fixtures/kernels/pv-x86_64.elf'));
const { aws } = useFakeAws();

beforeEach(() => {
  aws.putObject(KERNEL_BUCKET, KERNEL_KEY, KERNEL, KERNEL_VERSION);
});

const STRATEGIES: [string, (overrides?: Partial<UnikernelAmiProperties>) => UnikernelAmiProperties][] = [
  ['helper-instance', helperInstanceProperties],
  ['ebs-direct', ebsDirectProperties],
];

function calls(): string[] {
  return aws.requests.filter((r) => r.principal === 'handler').map((r) => `${r.service}:${r.action}`);
}

/** Nothing of a build exists: no instance, volume, snapshot, image of our own, staged object. */
function expectNothingCreated(): void {
  expect(aws.world.instances.size).toBe(0);
  expect(aws.world.volumes.size).toBe(0);
  expect(aws.world.snapshots.size).toBe(0);
  expect([...aws.world.images.values()].filter((image) => image.owner === 'self')).toEqual([]);
  expect([...aws.world.buckets.get(STAGING_BUCKET)!.keys()]).toEqual([]);
  expect(calls().filter((call) => /RunInstances|StartSnapshot|PutObject|CreateMultipartUpload/.test(call))).toEqual([]);
}

describe.each(STRATEGIES)('%s build', (_strategy, properties) => {
  test('an account without encryption by default: one read of the setting, nothing more, and the build completes', async () => {
    const { done } = await completeRequest(aws, createEvent(properties()));
    expect(done.Data?.ImageId).toMatch(/^ami-/);
    expect(calls().filter((call) => /Ebs|kms:/.test(call))).toEqual(['ec2:GetEbsEncryptionByDefault']);
  });

  test('encryption by default with the AWS managed key: the build completes', async () => {
    aws.world.encryption.encryptionByDefault = true;
    const { done } = await completeRequest(aws, createEvent(properties()));
    expect(done.Data?.ImageId).toMatch(/^ami-/);
    expect(calls()).toContain('ec2:GetEbsDefaultKmsKeyId');
  });

  test('the AWS managed key named by its ARN is resolved with kms:DescribeKey and accepted', async () => {
    aws.world.encryption.encryptionByDefault = true;
    aws.world.encryption.defaultKmsKeyId = aws.world.encryption.keys[0].arn;
    await expect(aws.drive(onEvent(createEvent(properties())))).resolves.toMatchObject({ PhysicalResourceId: expect.stringMatching(/^mua-/) });
    expect(calls()).toContain('kms:DescribeKey');
  });

  test('a customer managed default key the handler was not given: onEvent fails at once naming the key and encryptionKey, nothing created', async () => {
    aws.world.encryption.encryptionByDefault = true;
    const keyArn = aws.world.encryption.addKey('0f0f0f0f-1111-2222-3333-444444444444', 'CUSTOMER', ['alias/corp-ebs']);
    aws.world.encryption.defaultKmsKeyId = `arn:aws:kms:${REGION}:123456789012:alias/corp-ebs`;
    const failure = aws.drive(onEvent(createEvent(properties())));
    await expect(failure).rejects.toThrow(/customer managed KMS key arn:aws:kms:us-east-1:123456789012:alias\/corp-ebs/);
    await expect(failure).rejects.toThrow(new RegExp(keyArn.replace(/[/.]/g, '\\$&')));
    await expect(failure).rejects.toThrow(/encryptionKey/);
    expectNothingCreated();
  });

  test('a default key of another account the handler may not describe: fails naming it, nothing created', async () => {
    aws.world.encryption.encryptionByDefault = true;
    const foreign = 'arn:aws:kms:us-east-1:999999999999:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
    aws.world.encryption.foreignKeyArns.add(foreign);
    aws.world.encryption.defaultKmsKeyId = foreign;
    await expect(aws.drive(onEvent(createEvent(properties())))).rejects.toThrow(/customer managed KMS key arn:aws:kms:us-east-1:999999999999:key\/a.*may not even describe it.*encryptionKey/);
    expectNothingCreated();
  });

  test('the customer managed default key given as encryptionKey (by alias as the default): the build completes', async () => {
    aws.world.encryption.encryptionByDefault = true;
    const keyArn = aws.world.encryption.addKey('0f0f0f0f-1111-2222-3333-444444444444', 'CUSTOMER', ['alias/corp-ebs']);
    aws.world.encryption.defaultKmsKeyId = 'alias/corp-ebs';
    const { done } = await completeRequest(aws, createEvent(properties({ Encrypted: 'true', KmsKeyArn: keyArn })));
    expect(done.Data?.ImageId).toMatch(/^ami-/);
  });

  test('encryption asked for without a key and no encryption by default: a customer managed default key still applies and fails', async () => {
    aws.world.encryption.addKey('0f0f0f0f-1111-2222-3333-444444444444', 'CUSTOMER', ['alias/corp-ebs']);
    aws.world.encryption.defaultKmsKeyId = 'alias/corp-ebs';
    await expect(aws.drive(onEvent(createEvent(properties({ Encrypted: 'true' }))))).rejects.toThrow(/alias\/corp-ebs.*encryptionKey/);
    expectNothingCreated();
  });
});

describe('a customer managed default key and another encryptionKey', () => {
  beforeEach(() => {
    aws.world.encryption.encryptionByDefault = true;
    aws.world.encryption.defaultKmsKeyId = aws.world.encryption.addKey('0f0f0f0f-1111-2222-3333-444444444444', 'CUSTOMER');
  });
  const ownKey = `arn:aws:kms:${REGION}:123456789012:key/12121212-3434-5656-7878-909090909090`;

  test('EBS direct: the snapshot is encrypted with the given key, the default key is not used: the build starts', async () => {
    await expect(aws.drive(onEvent(createEvent(ebsDirectProperties({ Encrypted: 'true', KmsKeyArn: ownKey }))))).resolves.toMatchObject({ PhysicalResourceId: expect.any(String) });
  });

  test('helper: the helper\'s root volume would still get the default key: fails naming the helper\'s volumes', async () => {
    await expect(aws.drive(onEvent(createEvent(helperInstanceProperties({ Encrypted: 'true', KmsKeyArn: ownKey }))))).rejects.toThrow(/helper instance's volumes/);
    expectNothingCreated();
  });
});
