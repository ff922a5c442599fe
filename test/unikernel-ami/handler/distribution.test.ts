/**
 * Issue 17's options through the real provider framework (test/fixtures/lifecycle.ts) against the
 * strict fake: the AMI's name and description, launch permissions, the snapshot's create-volume
 * permission, deprecation and deregistration protection; applied on Create, changed in place on
 * Update (same physical id, same AMI, same snapshot), re-applied by a rollback, and a rename that
 * registers the same snapshot again. The resource properties are set as the construct sets them
 * (DISTRIBUTION_PROPERTIES), so these tests do not depend on the construct.
 */
import { deprecationChange } from '../../../lib/unikernel-ami/handler/distribution';
import { NO_SHARING } from '../../../lib/unikernel-ami/handler/properties';
import { IMAGE_USER_TAG_PREFIX, RETAINED_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import { deleteEvent, DISTRIBUTION_PROPERTIES, DISTRIBUTION_UPDATE, ebsDirectProperties, updateEvent } from '../../fixtures/custom-resource';
import { FakeAws, FakeImage, useFakeAws } from '../../fixtures/fake-aws';
import { completeRequest, LifecycleResult, runLifecycle } from '../../fixtures/lifecycle';

const { aws } = useFakeAws();

const DAY_MS = 86_400_000;

/** What the fake's AMI offers, in the properties' terms. */
function distributionOf(image: FakeImage) {
  return {
    name: image.name,
    description: image.description,
    launchPermissions: [...(image.launchPermissions ?? [])].sort(),
    snapshotAccounts: [...(aws.world.snapshots.get(rootOf(image))?.createVolumePermissions ?? [])].sort(),
    deprecationDays: image.deprecationTime === undefined ? undefined : (image.deprecationTime - image.createdAt) / DAY_MS,
    protection: image.protection,
  };
}

/** What the fake's AMI must offer for these properties (deprecation within EC2's rounding to the minute). */
function expectedDistribution(props: UnikernelAmiProperties, buildId: string) {
  return {
    name: `${props.ImageName ?? props.Name}-${buildId}`,
    description: props.ImageDescription,
    launchPermissions: [
      ...(props.Sharing?.Accounts ?? []).map((a) => `user:${a}`),
      ...(props.Sharing?.OrganizationArns ?? []).map((a) => `org:${a}`),
      ...(props.Sharing?.OrganizationalUnitArns ?? []).map((a) => `ou:${a}`),
      ...(props.Sharing?.Public === 'true' ? ['group:all'] : []),
    ].sort(),
    snapshotAccounts: [...(props.Sharing?.SnapshotAccounts ?? [])].sort(),
    deprecationDays: props.DeprecateAfterSeconds === undefined ? undefined : expect.closeTo(Number(props.DeprecateAfterSeconds) / 86_400, 3),
    protection: { 'on': 'without-cooldown', 'on-with-cooldown': 'with-cooldown' }[props.DeregistrationProtection ?? ''],
  };
}

function rootOf(image: FakeImage): string {
  return image.blockDeviceMappings.find((m) => m.DeviceName === image.rootDeviceName)!.Ebs!.SnapshotId!;
}

function imageOf(result: LifecycleResult, reason: string): FakeImage {
  const outcome = result.outcomes.find((o) => o.reason === reason)!;
  return aws.world.images.get(outcome.data!.ImageId)!;
}

/** Deregistered (EC2 stops listing a deregistered AMI after a while: then it is not there at all). */
function deregistered(imageId: string): boolean {
  const image = aws.world.images.get(imageId);
  return image === undefined || image.state === 'deregistered';
}

function ownSnapshots(fake: FakeAws): string[] {
  return [...fake.world.snapshots.keys()];
}

describe('Create with every option', () => {
  test('names, describes, shares, deprecates and protects the AMI before CloudFormation hears of it', async () => {
    // WHEN
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create', properties: DISTRIBUTION_PROPERTIES });

    // THEN
    const [created] = result.outcomes;
    expect(created.status).toBe('SUCCESS');
    const image = imageOf(result, 'create');
    const props = ebsDirectProperties(DISTRIBUTION_PROPERTIES);
    expect(distributionOf(image)).toEqual(expectedDistribution(props, created.physicalResourceId));
    expect(created.data!.ImageName).toBe(`hello-release-${created.physicalResourceId}`);
    // the deprecation is 90 days after the AMI's creation, on a whole minute
    expect(image.deprecationTime! % 60_000).toBe(0);
    expect(result.leaks).toEqual([]);
  });

  test('public sharing while the account blocks public AMIs fails clearly, and the failed build leaves nothing', async () => {
    // GIVEN block public access for AMIs on (the fake account's default, as for new accounts)
    const properties = { ...DISTRIBUTION_PROPERTIES, Sharing: { Public: 'true' }, DeregistrationProtection: 'off' };

    // WHEN
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create', properties });

    // THEN
    expect(result.outcomes[0].status).toBe('FAILED');
    expect(result.outcomes[0].failureReason).toMatch(/block public access for AMIs is on in this account and region \(state block-new-sharing\)/);
    expect(aws.handlerRequests('ModifyImageAttribute')).toEqual([]);
    expect(result.leaks).toEqual([]);
  });

  test('public sharing once the account allows it: launch permission for everyone', async () => {
    aws.world.imageBlockPublicAccess = 'unblocked';
    const properties = { ...DISTRIBUTION_PROPERTIES, Sharing: { Public: 'true' } };

    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create', properties });

    expect(result.outcomes[0].status).toBe('SUCCESS');
    expect(imageOf(result, 'create').launchPermissions).toEqual(['group:all']);
  });

  test('sharing an AMI the account\'s encryption by default would encrypt with the AWS managed key is refused before anything is made', async () => {
    aws.world.encryption.encryptionByDefault = true;

    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create', properties: DISTRIBUTION_PROPERTIES });

    expect(result.outcomes[0].status).toBe('FAILED');
    expect(result.outcomes[0].failureReason).toMatch(/Cannot share the AMI: its snapshot would be encrypted with the AWS managed key alias\/aws\/ebs \(this account's EBS encryption by default\)/);
    expect(aws.handlerRequests('StartSnapshot')).toEqual([]);
    expect(ownSnapshots(aws)).toEqual([]);
  });

  test('a deprecation EC2 would refuse (more than 10 years ahead) fails with the handler\'s own message', async () => {
    const properties = { ...DISTRIBUTION_PROPERTIES, DeprecateAfterSeconds: String(11 * 365 * 86_400), DeregistrationProtection: 'off' };

    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'create', properties });

    expect(result.outcomes[0].failureReason).toMatch(/EC2 allows at most 10 years ahead\. Choose a shorter deprecateAfter/);
    expect(aws.handlerRequests('EnableImageDeprecation')).toEqual([]);
    expect(result.leaks).toEqual([]);
  });
});

describe('deprecationChange: the time to set, within EC2\'s limits', () => {
  const created = Date.UTC(2027, 0, 1);
  const image = (deprecation?: number) => ({ ImageId: 'ami-0123', CreationDate: new Date(created).toISOString(), DeprecationTime: deprecation === undefined ? undefined : new Date(deprecation).toISOString() });
  const spec = (seconds: number | undefined, isPublic = false) => ({ deprecateAfterSeconds: seconds, sharing: { ...NO_SHARING, public: isPublic } });

  test('counted from the AMI\'s creation, rounded to the minute; nothing to do when set; null to remove', () => {
    expect(deprecationChange(image(), spec(86_400 + 31), created + 1000)).toBe(created + 86_400_000 + 60_000);
    expect(deprecationChange(image(created + 86_400_000), spec(86_400), created + 3_600_000)).toBeUndefined();
    expect(deprecationChange(image(created + 86_400_000), spec(undefined), created)).toBeNull();
    expect(deprecationChange(image(), spec(undefined), created)).toBeUndefined();
  });

  test('refused: past, beyond 10 years, and for a public AMI beyond 2 years after creation even when already set', () => {
    expect(() => deprecationChange(image(), spec(3600), created + 2 * 3_600_000)).toThrow(/that time has passed/);
    expect(() => deprecationChange(image(), spec(11 * 365 * 86_400), created)).toThrow(/at most 10 years ahead/);
    const threeYears = 3 * 365 * 86_400;
    expect(deprecationChange(image(created + threeYears * 1000), spec(threeYears), created)).toBeUndefined();
    expect(() => deprecationChange(image(created + threeYears * 1000), spec(threeYears, true), created)).toThrow(/a public AMI at most 2 years after its creation/);
  });
});

describe('Update of each option', () => {
  test('changes the AMI in place: same physical id, AMI and snapshot; permissions granted and revoked', async () => {
    // WHEN every option changes (DISTRIBUTION_UPDATE)
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'distribution-update' });

    // THEN
    const [created, updated] = result.outcomes;
    expect(updated.status).toBe('SUCCESS');
    expect(updated.physicalResourceId).toBe(created.physicalResourceId);
    expect(updated.data).toEqual(created.data);
    expect(aws.handlerRequests('RegisterImage')).toHaveLength(1);
    expect(aws.handlerRequests('StartSnapshot')).toHaveLength(1);
    const image = imageOf(result, 'update');
    expect(distributionOf(image)).toEqual(expectedDistribution(ebsDirectProperties({ ...DISTRIBUTION_PROPERTIES, ...DISTRIBUTION_UPDATE, ImageName: 'hello-release' }), created.physicalResourceId));
    // the account removed lost its permission, the snapshot is shared with nobody any more
    expect(image.launchPermissions).not.toContain('user:111122223333');
    expect(aws.world.snapshots.get(rootOf(image))!.createVolumePermissions).toEqual([]);
    expect(result.leaks).toEqual([]);
  });

  test('a refused Update (public while blocked) changes nothing, and the rollback Update leaves the old values', async () => {
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'distribution-update', updateProperties: { ...DISTRIBUTION_UPDATE, Sharing: { Public: 'true' } } });

    const [created, updated, rolledBack] = result.outcomes;
    expect(updated.status).toBe('FAILED');
    expect(updated.failureReason).toMatch(/block public access for AMIs is on/);
    expect(rolledBack).toMatchObject({ reason: 'rollback-update', status: 'SUCCESS', physicalResourceId: created.physicalResourceId });
    expect(distributionOf(imageOf(result, 'create'))).toEqual(expectedDistribution(ebsDirectProperties(DISTRIBUTION_PROPERTIES), created.physicalResourceId));
    expect(result.leaks).toEqual([]);
  });

  test('a rollback Update re-applies the old values after a successful one', async () => {
    // GIVEN the in-place Update succeeded
    const first = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'distribution-update' });
    const [created, updated] = first.outcomes;
    expect(updated.status).toBe('SUCCESS');
    const p1 = ebsDirectProperties(DISTRIBUTION_PROPERTIES);
    const p2 = { ...p1, ...DISTRIBUTION_UPDATE };

    // WHEN another resource fails and CloudFormation rolls this one back (old properties, same id)
    const { done } = await completeRequest(aws, updateEvent(created.physicalResourceId, p1, p2, 'rollback-update'));

    // THEN the old values are back on the same AMI
    expect(done.Data).toEqual(created.data);
    expect(distributionOf(imageOf(first, 'create'))).toEqual(expectedDistribution(p1, created.physicalResourceId));
  });

  test('sharing added to an AMI encrypted with the AWS managed key is refused before anything changes', async () => {
    const result = await runLifecycle(aws, {
      strategy: 'ebs-direct', lifecycle: 'tag-update',
      properties: { Encrypted: 'true' },
      updateProperties: { Sharing: { Accounts: ['111122223333'] } },
    });

    const [, updated, rolledBack] = result.outcomes;
    expect(updated.failureReason).toMatch(/Cannot share the AMI: its snapshot snap-\w+ is encrypted with the AWS managed key arn:aws:kms:us-east-1:123456789012:key\/aws-ebs-key/);
    expect(rolledBack.status).toBe('SUCCESS');
    expect(aws.handlerRequests('ModifyImageAttribute')).toEqual([]);
  });
});

describe('Rename', () => {
  test('registers the same snapshot under the new name; the cleanup Delete deregisters the old AMI and keeps the snapshot', async () => {
    // WHEN ImageName changes (the old AMI protected, shared, deprecating)
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'rename' });

    // THEN a new physical id and AMI, the same snapshot, no new disk
    const [created, updated, cleanup] = result.outcomes;
    expect(updated.status).toBe('SUCCESS');
    expect(updated.physicalResourceId).not.toBe(created.physicalResourceId);
    expect(updated.data!.ImageId).not.toBe(created.data!.ImageId);
    expect(updated.data!.SnapshotId).toBe(created.data!.SnapshotId);
    expect(updated.data!.ImageName).toBe(`hello-renamed-${updated.physicalResourceId}`);
    expect(aws.handlerRequests('StartSnapshot')).toHaveLength(1);
    expect(ownSnapshots(aws)).toEqual([created.data!.SnapshotId]);
    // the new AMI has every option; the old one, protected, was unprotected and deregistered by the cleanup
    expect(distributionOf(imageOf(result, 'update'))).toEqual(expectedDistribution(ebsDirectProperties({ ...DISTRIBUTION_PROPERTIES, ImageName: 'hello-renamed' }), updated.physicalResourceId));
    expect(cleanup).toMatchObject({ reason: 'cleanup-delete', status: 'SUCCESS' });
    expect(deregistered(created.data!.ImageId)).toBe(true);
    expect(aws.handlerRequests('DeregisterImage').map((r) => r.input.ImageId)).toEqual([created.data!.ImageId]);
    expect(aws.handlerRequests('DeleteSnapshot')).toEqual([]);
    expect(aws.tagsOf(created.data!.SnapshotId)[`${IMAGE_USER_TAG_PREFIX}${updated.physicalResourceId}`]).toBe(updated.data!.ImageId);
    expect(result.leaks).toEqual([]);
    expect(result.wrongfulDeletes).toEqual([]);

    // WHEN the stack is deleted: the renamed AMI is the snapshot's last user, and its Delete removes both
    const p2 = ebsDirectProperties({ ...DISTRIBUTION_PROPERTIES, ImageName: 'hello-renamed' });
    await completeRequest(aws, deleteEvent(updated.physicalResourceId, p2, 'stack-delete'));
    expect(deregistered(updated.data!.ImageId)).toBe(true);
    expect(ownSnapshots(aws)).toEqual([]);
  });

  test('a rollback brings the old build back; the Delete of the renamed one keeps the snapshot the old AMI uses', async () => {
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'rename-rollback' });

    const [created, updated, rolledBack, cleanup] = result.outcomes;
    expect(updated.status).toBe('SUCCESS');
    expect(rolledBack).toMatchObject({ reason: 'rollback-update', status: 'SUCCESS', physicalResourceId: created.physicalResourceId, data: created.data });
    expect(cleanup).toMatchObject({ reason: 'rollback-delete', status: 'SUCCESS', physicalResourceId: updated.physicalResourceId });
    expect(deregistered(updated.data!.ImageId)).toBe(true);
    expect(aws.world.images.get(created.data!.ImageId)!.state).toBe('available');
    expect(ownSnapshots(aws)).toEqual([created.data!.SnapshotId]);
    expect(distributionOf(imageOf(result, 'create'))).toEqual(expectedDistribution(ebsDirectProperties(DISTRIBUTION_PROPERTIES), created.physicalResourceId));
    expect(result.leaks).toEqual([]);
    expect(result.wrongfulDeletes).toEqual([]);
  });
});

describe('Delete and retain', () => {
  test('a protected AMI: protection turned off, then deregistered, its snapshot deleted', async () => {
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'protected-delete' });

    expect(result.outcomes.map((o) => o.status)).toEqual(['SUCCESS', 'SUCCESS']);
    expect(aws.handlerRequests('DisableImageDeregistrationProtection')).toHaveLength(1);
    expect(deregistered(result.outcomes[0].data!.ImageId)).toBe(true);
    expect(ownSnapshots(aws)).toEqual([]);
    expect(result.leaks).toEqual([]);
  });

  test('RETAIN with cooldown: the AMI stays protected, shared and marked retained', async () => {
    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'protected-retain' });

    expect(result.outcomes.map((o) => o.status)).toEqual(['SUCCESS', 'SUCCESS']);
    const image = imageOf(result, 'create');
    expect(image.state).toBe('available');
    expect(image.protection).toBe('with-cooldown');
    expect(image.launchPermissions).toHaveLength(3);
    expect(aws.tagsOf(image.id)[RETAINED_TAG]).toBe('true');
    expect(aws.handlerRequests('DisableImageDeregistrationProtection')).toEqual([]);
    expect(result.leaks).toEqual([]);
  });

  test('cooldown under destroy (a template the construct would refuse): the Delete fails saying when it can go, and a Delete after the cooldown succeeds', async () => {
    const properties = { ...DISTRIBUTION_PROPERTIES, DeregistrationProtection: 'on-with-cooldown' };

    const result = await runLifecycle(aws, { strategy: 'ebs-direct', lifecycle: 'delete', properties });

    const [created, deleted, retried] = result.outcomes;
    expect(deleted.status).toBe('FAILED');
    expect(deleted.failureReason).toMatch(/deregistration protection with cooldown: its protection is off now, but EC2 keeps it for 24 hours after that .*Delete again after the cooldown/);
    expect(retried.status).toBe('FAILED');
    expect(aws.world.images.get(created.data!.ImageId)!.state).toBe('available');

    // WHEN the user deletes again after the cooldown
    await aws.advance(24 * 3600_000);
    await completeRequest(aws, deleteEvent(created.physicalResourceId, ebsDirectProperties(properties), 'after-cooldown'));
    expect(deregistered(created.data!.ImageId)).toBe(true);
    expect(ownSnapshots(aws)).toEqual([]);
  });
});
