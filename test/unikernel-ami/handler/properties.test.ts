import { DiskLayout } from '../../../lib/disk-image';
import { KernelArchitecture } from '../../../lib/pv-grub';
import {
  buildTags,
  changedRebuildProperties,
  imageNameChanged,
  isReservedTagKey,
  NO_SHARING,
  parseProperties,
  propertiesHash,
  stackNameOf,
  userTagList,
} from '../../../lib/unikernel-ami/handler/properties';
import { AmiRemovalKind, BUILD_ID_TAG, BuildStrategyKind, DeregistrationProtectionKind, IMAGE_USER_TAG_PREFIX, MANAGED_TAG, PROPERTIES_TAG, RESOURCE_TAG, RETAINED_TAG, STACK_ID_TAG, STACK_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
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

  test('issue 17\'s options, typed: name prefix, description, sharing (sorted, deduplicated), deprecation, protection', () => {
    const spec = parseProperties(ebsDirectProperties({
      ImageName: 'release', ImageDescription: 'A release',
      Sharing: { Accounts: ['222233334444', '111122223333', '111122223333'], SnapshotAccounts: ['444455556666'], Public: 'true' },
      DeprecateAfterSeconds: '86400', DeregistrationProtection: 'on-with-cooldown',
    }));
    expect(spec).toMatchObject({
      imageNamePrefix: 'release', imageDescription: 'A release',
      sharing: { accounts: ['111122223333', '222233334444'], organizationArns: [], organizationalUnitArns: [], snapshotAccounts: ['444455556666'], public: true },
      deprecateAfterSeconds: 86400, protection: DeregistrationProtectionKind.ON_WITH_COOLDOWN,
    });
    expect(parseProperties(ebsDirectProperties())).toMatchObject({ imageNamePrefix: 'hello', sharing: NO_SHARING, protection: DeregistrationProtectionKind.OFF });
    expect(parseProperties(ebsDirectProperties()).deprecateAfterSeconds).toBeUndefined();
  });

  test.each([
    [{ Sharing: { Accounts: ['1234'] } }, 'Invalid resource property Sharing.accounts ["1234"]'],
    [{ Sharing: { OrganizationArns: ['o-abc'] } }, 'Invalid resource property Sharing.organizationArns'],
    [{ DeprecateAfterSeconds: '10' }, 'Invalid resource property DeprecateAfterSeconds "10": expected a whole number of seconds, at least 60.'],
    [{ DeregistrationProtection: 'yes' }, 'Invalid resource property DeregistrationProtection "yes": expected one of off, on, on-with-cooldown.'],
  ])('%p is refused: %s', (override, message) => {
    expect(() => parseProperties(ebsDirectProperties(override as Partial<UnikernelAmiProperties>))).toThrow(message);
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

  test('issue 17\'s options do not rebuild: they are applied to the AMI in place, or (ImageName) the same disk registered again', () => {
    const old = ebsDirectProperties();
    const changed = ebsDirectProperties({
      ImageName: 'other', ImageDescription: 'd', Sharing: { Accounts: ['111122223333'], Public: 'true' }, DeprecateAfterSeconds: '3600', DeregistrationProtection: 'on',
    });
    expect(changedRebuildProperties(old, changed)).toEqual([]);
    expect(imageNameChanged(old, changed)).toBe(true);
    expect(imageNameChanged(old, ebsDirectProperties({ ImageDescription: 'd' }))).toBe(false);
    // An ImageName equal to Name names the same AMIs: no rename.
    expect(imageNameChanged(old, ebsDirectProperties({ ImageName: 'hello' }))).toBe(false);
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

  test('the AMI\'s name is part of the hash (a rename\'s rollback finds the old build), but not when it is Name\'s: hashes of earlier releases stay', () => {
    const base = ebsDirectProperties();
    expect(propertiesHash(ebsDirectProperties({ ImageName: 'release' }))).not.toBe(propertiesHash(base));
    expect(propertiesHash(ebsDirectProperties({ ImageName: 'hello' }))).toBe(propertiesHash(base));
    expect(propertiesHash(ebsDirectProperties({ ImageDescription: 'd', Sharing: { Accounts: ['111122223333'] }, DeregistrationProtection: 'on' }))).toBe(propertiesHash(base));
  });

  test('a snapshot\'s marks of further AMIs are the build\'s own tags, never user tags', () => {
    expect(isReservedTagKey(`${IMAGE_USER_TAG_PREFIX}mua-0123456789abcdef`)).toBe(true);
    expect(userTagList({ [`${IMAGE_USER_TAG_PREFIX}x`]: 'ami-1', team: 'a' })).toEqual([{ Key: 'team', Value: 'a' }]);
  });

  test('stackNameOf takes the name out of a stack ARN', () => {
    expect(stackNameOf(STACK_ID)).toBe(STACK_NAME);
    expect(stackNameOf('plain')).toBe('plain');
  });
});
