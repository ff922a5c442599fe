import { DiskLayout } from '../../../lib/disk-image';
import { KernelArchitecture } from '../../../lib/pv-grub';
import {
  buildTags,
  changedRebuildProperties,
  parseProperties,
  propertiesHash,
  stackNameOf,
  userTagList,
} from '../../../lib/unikernel-ami/handler/properties';
import { AmiRemovalKind, BUILD_ID_TAG, BuildStrategyKind, MANAGED_TAG, PROPERTIES_TAG, RESOURCE_TAG, RETAINED_TAG, STACK_ID_TAG, STACK_TAG } from '../../../lib/unikernel-ami/types';
import { ebsDirectProperties, helperInstanceProperties, STACK_ID, STACK_NAME } from '../../fixtures/custom-resource';

describe('parseProperties', () => {
  test('types the strings CloudFormation passes', () => {
    const spec = parseProperties(helperInstanceProperties({ VolumeSizeGiB: '8', Encrypted: 'true', Layout: 'mbr', Architecture: 'i386', RemovalPolicy: 'retain' }));
    expect(spec).toMatchObject({
      volumeSizeGiB: 8,
      encrypted: true,
      layout: DiskLayout.MBR_PARTITION,
      architecture: KernelArchitecture.I386,
      removal: AmiRemovalKind.RETAIN,
      strategy: BuildStrategyKind.HELPER_INSTANCE,
    });
  });

  test('an empty version or key ARN means none', () => {
    const spec = parseProperties(helperInstanceProperties({ KernelObjectVersion: '', KmsKeyArn: '' }));
    expect(spec.kernelObjectVersion).toBeUndefined();
    expect(spec.kmsKeyArn).toBeUndefined();
  });

  test.each([
    [{ VolumeSizeGiB: '0' }, 'Invalid resource property VolumeSizeGiB "0": expected a whole number of GiB (at least 1).'],
    [{ VolumeSizeGiB: 'ten' }, 'Invalid resource property VolumeSizeGiB "ten"'],
    [{ Architecture: 'arm64' }, 'Invalid resource property Architecture "arm64": expected one of x86_64, i386.'],
    [{ Encrypted: 'yes' }, 'Invalid resource property Encrypted "yes": expected one of true, false.'],
    [{ RemovalPolicy: 'snapshot' }, 'Invalid resource property RemovalPolicy "snapshot": expected one of destroy, retain.'],
    [{ Strategy: 'vmimport' }, 'Invalid resource property Strategy "vmimport": expected one of helper-instance, ebs-direct.'],
    [{ KernelId: '' }, 'Missing resource property KernelId'],
    [{ StagingBucket: undefined }, 'The helper-instance strategy needs the resource properties StagingBucket and Helper'],
  ])('%p is refused: %s', (override, message) => {
    expect(() => parseProperties(helperInstanceProperties(override))).toThrow(message);
  });

  test('ebs-direct needs no staging bucket or helper', () => {
    expect(parseProperties(ebsDirectProperties()).strategy).toBe(BuildStrategyKind.EBS_DIRECT);
  });
});

describe('changedRebuildProperties', () => {
  test('names the properties that change the disk or AMI', () => {
    const old = helperInstanceProperties();
    expect(changedRebuildProperties(old, helperInstanceProperties({ KernelKey: 'other.xen', Encrypted: 'true' }))).toEqual(['KernelKey', 'Encrypted']);
    expect(changedRebuildProperties(old, helperInstanceProperties({ KmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/k' }))).toEqual(['KmsKeyArn']);
  });

  test('tags, removal policy, helper settings and the staging bucket do not', () => {
    const old = helperInstanceProperties();
    const changed = helperInstanceProperties({
      Tags: { team: 'b' },
      RemovalPolicy: 'retain',
      StagingBucket: 'other-bucket',
      Helper: { ...old.Helper!, InstanceType: 'm5.large', SubnetId: 'subnet-other' },
    });
    expect(changedRebuildProperties(old, changed)).toEqual([]);
  });

  test('an absent and an empty value are the same', () => {
    expect(changedRebuildProperties(helperInstanceProperties({ KernelObjectVersion: undefined }), helperInstanceProperties({ KernelObjectVersion: '' }))).toEqual([]);
  });
});

describe('tags', () => {
  test('the build\'s own tags follow the user\'s and cannot be overridden by them', () => {
    const spec = parseProperties(helperInstanceProperties({ Tags: { team: 'a', [MANAGED_TAG]: 'false', Name: 'x', [RESOURCE_TAG]: 'Other', [RETAINED_TAG]: 'true', [STACK_ID_TAG]: 'mine' } }));
    const identity = { buildId: 'mua-0123456789abcdef', stackId: STACK_ID, logicalId: 'HelloAmi', propertiesHash: '0f'.repeat(16) };
    expect(buildTags(identity, spec)).toEqual([
      { Key: 'team', Value: 'a' },
      { Key: 'Name', Value: 'hello' },
      { Key: BUILD_ID_TAG, Value: 'mua-0123456789abcdef' },
      { Key: STACK_TAG, Value: STACK_NAME },
      { Key: STACK_ID_TAG, Value: STACK_ID },
      { Key: MANAGED_TAG, Value: 'true' },
      { Key: RESOURCE_TAG, Value: 'HelloAmi' },
      { Key: PROPERTIES_TAG, Value: '0f'.repeat(16) },
    ]);
    expect(userTagList(spec.userTags)).toEqual([{ Key: 'team', Value: 'a' }]);
  });

  test('the properties hash changes with what makes the AMI, and only with that', () => {
    const base = helperInstanceProperties();
    expect(propertiesHash(base)).toMatch(/^[0-9a-f]{32}$/);
    expect(propertiesHash(helperInstanceProperties({ Tags: { other: 'x' }, RemovalPolicy: 'retain' }))).toBe(propertiesHash(base));
    expect(propertiesHash(helperInstanceProperties({ KernelArgs: 'console=hvc0' }))).not.toBe(propertiesHash(base));
    expect(propertiesHash(ebsDirectProperties())).not.toBe(propertiesHash(base));
  });

  test('stackNameOf takes the name out of a stack ARN', () => {
    expect(stackNameOf(STACK_ID)).toBe(STACK_NAME);
    expect(stackNameOf('plain')).toBe('plain');
  });
});
