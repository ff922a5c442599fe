/**
 * What the AMI offers beyond its disk: its description, who may launch it (launch permissions on
 * the AMI) and read its disk (create-volume permission on the root snapshot), when it deprecates,
 * and whether it may be deregistered. Applied to an available AMI before the build answers complete,
 * and again on every Update that keeps the AMI (a rollback Update sends the old values back, which
 * are then applied the same way).
 *
 * Each setting is read back from EC2 and only the difference is changed, so a repeated delivery,
 * or a round after a transient error, changes nothing more. The checks that refuse a setting come
 * before any change, so a refused Update leaves the AMI as it was.
 *
 * EC2 facts relied on (AMI sharing, deprecation and deregistration-protection pages of the EC2 user
 * guide and API reference):
 * - An AMI is launched through its launch permissions; its snapshots need no permission of their
 *   own for that. Create-volume permission on the snapshot hands out the disk's contents, and names
 *   accounts only.
 * - An AMI whose snapshot is encrypted with the AWS managed key (alias/aws/ebs) cannot be shared;
 *   with a customer managed key, the key policy must let the targets use the key.
 * - Public sharing (launch permission group `all`) is refused while the account's block public
 *   access for AMIs is on, per region; GetImageBlockPublicAccessState tells.
 * - A deprecation time cannot be in the past, nor more than 10 years ahead (2 years from creation
 *   for a public AMI); EC2 rounds it to the minute.
 * - A protected AMI cannot be deregistered; disabling protection that was enabled with cooldown
 *   keeps it protected for 24 more hours.
 */
import {
  DescribeImageAttributeCommand,
  DescribeSnapshotAttributeCommand,
  DisableImageDeprecationCommand,
  DisableImageDeregistrationProtectionCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  EnableImageDeregistrationProtectionCommand,
  GetImageBlockPublicAccessStateCommand,
  Image,
  LaunchPermission,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
} from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { DeregistrationProtectionKind } from '../types';
import { clock } from './clock';
import { describeKey, isAwsManagedAlias, unsharableKeyMessage } from './encryption-default';
import { BuildFailure } from './failure';
import { describeSnapshotById, imageDescriptionOf, timeOf } from './image';
import { StepLog } from './log';
import { BuildSpec, isShared } from './properties';
import { withRetry } from './retry';

/** EC2's longest deprecation delay, and that of a public AMI (counted from its creation). */
const MAX_DEPRECATION_MS = 10 * 365 * 86_400_000;
const MAX_PUBLIC_DEPRECATION_MS = 2 * 365 * 86_400_000;

/**
 * How DescribeImages shows deregistration protection (assumption: the API reference types the
 * field as a string without listing values; these are the console's three choices, and any other
 * value, such as one shown during a cooldown, is treated as "still protected").
 */
export const PROTECTION_VALUES: Record<DeregistrationProtectionKind, string> = {
  [DeregistrationProtectionKind.OFF]: 'disabled',
  [DeregistrationProtectionKind.ON]: 'enabled-without-cooldown',
  [DeregistrationProtectionKind.ON_WITH_COOLDOWN]: 'enabled-with-cooldown',
};

export interface DistributionContext {
  readonly ec2: EC2Client;
  readonly kms: KMSClient;
  readonly buildId: string;
  readonly spec: BuildSpec;
  readonly log: StepLog;
}

/**
 * Brings the AMI's description, launch permissions, snapshot permissions, deprecation and
 * protection to what the spec asks, protection last (once it is on, a failure cleanup must turn it
 * off again before it can deregister the AMI).
 * @param image the available AMI, read by its id
 * @param fresh the AMI and its snapshot are the build's own, new: they have no permissions yet, so
 *   when none are asked for, there is nothing to read back
 */
export async function applyDistribution(ctx: DistributionContext, image: Image, snapshotId: string, fresh = false): Promise<void> {
  const imageId = image.ImageId!;
  const { spec } = ctx;
  await refuseUnsharableKey(ctx, snapshotId);
  const desired = desiredLaunchPermissions(spec);
  const launch = fresh && desired.length === 0 ? { add: [], remove: [] } : await launchPermissionChanges(ctx.ec2, imageId, desired);
  if (launch.add.some((p) => p.Group === 'all')) {
    await refuseBlockedPublicAccess(ctx.ec2, imageId);
  }
  const deprecateAt = deprecationChange(image, spec, clock().now());

  const description = imageDescriptionOf(spec, ctx.buildId);
  if ((image.Description ?? '') !== description) {
    await withRetry('ec2:ModifyImageAttribute', () => ctx.ec2.send(new ModifyImageAttributeCommand({ ImageId: imageId, Description: { Value: description } })));
    ctx.log.step('set-image-description', { imageId });
  }
  if (launch.add.length > 0 || launch.remove.length > 0) {
    await withRetry('ec2:ModifyImageAttribute', () => ctx.ec2.send(new ModifyImageAttributeCommand({
      ImageId: imageId,
      LaunchPermission: { Add: launch.add.length > 0 ? launch.add : undefined, Remove: launch.remove.length > 0 ? launch.remove : undefined },
    })));
    ctx.log.step('set-launch-permissions', { imageId, added: launch.add.map(permissionKey).join(','), removed: launch.remove.map(permissionKey).join(',') });
  }
  if (!(fresh && spec.sharing.snapshotAccounts.length === 0)) {
    await applySnapshotPermissions(ctx, snapshotId);
  }
  if (deprecateAt === null) {
    await withRetry('ec2:DisableImageDeprecation', () => ctx.ec2.send(new DisableImageDeprecationCommand({ ImageId: imageId })));
    ctx.log.step('disable-image-deprecation', { imageId });
  } else if (deprecateAt !== undefined) {
    await withRetry('ec2:EnableImageDeprecation', () => ctx.ec2.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: new Date(deprecateAt) })));
    ctx.log.step('enable-image-deprecation', { imageId, deprecateAt: new Date(deprecateAt).toISOString() });
  }
  await applyProtection(ctx, image);
}

/** The launch permissions the spec asks for, in EC2's shape. */
export function desiredLaunchPermissions(spec: Pick<BuildSpec, 'sharing'>): LaunchPermission[] {
  return [
    ...spec.sharing.accounts.map((UserId) => ({ UserId })),
    ...spec.sharing.organizationArns.map((OrganizationArn) => ({ OrganizationArn })),
    ...spec.sharing.organizationalUnitArns.map((OrganizationalUnitArn) => ({ OrganizationalUnitArn })),
    ...(spec.sharing.public ? [{ Group: 'all' as const }] : []),
  ];
}

function permissionKey(p: LaunchPermission): string {
  return p.UserId ?? p.OrganizationArn ?? p.OrganizationalUnitArn ?? (p.Group ? `group:${p.Group}` : '?');
}

/** What to add and remove so that the AMI's launch permissions are `desired`. */
async function launchPermissionChanges(ec2: EC2Client, imageId: string, desired: LaunchPermission[]): Promise<{ add: LaunchPermission[]; remove: LaunchPermission[] }> {
  const current = (await withRetry('ec2:DescribeImageAttribute', () => ec2.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' })))).LaunchPermissions ?? [];
  const currentKeys = new Set(current.map(permissionKey));
  const desiredKeys = new Set(desired.map(permissionKey));
  return {
    add: desired.filter((p) => !currentKeys.has(permissionKey(p))),
    remove: current.filter((p) => !desiredKeys.has(permissionKey(p))).map(({ UserId, OrganizationArn, OrganizationalUnitArn, Group }) => ({ UserId, OrganizationArn, OrganizationalUnitArn, Group })),
  };
}

async function refuseBlockedPublicAccess(ec2: EC2Client, imageId: string): Promise<void> {
  const state = (await withRetry('ec2:GetImageBlockPublicAccessState', () => ec2.send(new GetImageBlockPublicAccessStateCommand({})))).ImageBlockPublicAccessState;
  if (state !== 'unblocked') {
    throw new BuildFailure(
      `Cannot make AMI ${imageId} public: block public access for AMIs is on in this account and region (state ${state ?? 'unknown'}). ` +
      'Turn it off (aws ec2 disable-image-block-public-access; it takes up to 10 minutes, and an organization\'s declarative policy may enforce it), or do not share the AMI publicly.',
    );
  }
}

/**
 * An AMI whose snapshot is encrypted with the AWS managed key cannot be shared: refused before
 * anything changes. The construct refuses it at synth where it knows the key; here the snapshot, read
 * by id, names the key it was encrypted with (the account's default key, when encryption by default
 * decided it).
 */
async function refuseUnsharableKey(ctx: DistributionContext, snapshotId: string): Promise<void> {
  if (!isShared(ctx.spec.sharing)) {
    return;
  }
  const snapshot = await describeSnapshotById(ctx.ec2, snapshotId);
  if (!snapshot?.Encrypted || !snapshot.KmsKeyId || snapshot.KmsKeyId === ctx.spec.kmsKeyArn) {
    return;
  }
  const key = isAwsManagedAlias(snapshot.KmsKeyId) ? { manager: 'AWS', arn: snapshot.KmsKeyId } : await describeKey(ctx.kms, snapshot.KmsKeyId);
  if (key?.manager === 'AWS') {
    throw new BuildFailure(unsharableKeyMessage(`snapshot ${snapshotId} is encrypted with the AWS managed key ${key.arn ?? snapshot.KmsKeyId}`));
  }
}

async function applySnapshotPermissions(ctx: DistributionContext, snapshotId: string): Promise<void> {
  const response = await withRetry('ec2:DescribeSnapshotAttribute', () => ctx.ec2.send(new DescribeSnapshotAttributeCommand({ SnapshotId: snapshotId, Attribute: 'createVolumePermission' })));
  const current = (response.CreateVolumePermissions ?? []).map((p) => p.UserId ?? (p.Group ? `group:${p.Group}` : '')).filter((k) => k !== '');
  const desired = ctx.spec.sharing.snapshotAccounts;
  const add = desired.filter((account) => !current.includes(account));
  const remove = current.filter((key) => !desired.includes(key));
  if (add.length === 0 && remove.length === 0) {
    return;
  }
  const asPermission = (key: string) => (key.startsWith('group:') ? { Group: key.slice(6) as 'all' } : { UserId: key });
  await withRetry('ec2:ModifySnapshotAttribute', () => ctx.ec2.send(new ModifySnapshotAttributeCommand({
    SnapshotId: snapshotId,
    Attribute: 'createVolumePermission',
    CreateVolumePermission: { Add: add.length > 0 ? add.map(asPermission) : undefined, Remove: remove.length > 0 ? remove.map(asPermission) : undefined },
  })));
  ctx.log.step('set-snapshot-permissions', { snapshotId, added: add.join(','), removed: remove.join(',') });
}

/**
 * The deprecation time to set: undefined when the AMI already has the right one, null to remove it.
 * The time is counted from the AMI's creation (so an Update of another property never moves it) and
 * checked against EC2's limits first, so that a refusal is the handler's own clear message.
 */
export function deprecationChange(image: Image, spec: Pick<BuildSpec, 'deprecateAfterSeconds' | 'sharing'>, now: number): number | null | undefined {
  const current = timeOf(image.DeprecationTime);
  if (spec.deprecateAfterSeconds === undefined) {
    return current === undefined ? undefined : null;
  }
  const createdAt = timeOf(image.CreationDate) ?? now;
  const desired = Math.round((createdAt + spec.deprecateAfterSeconds * 1000) / 60_000) * 60_000;
  const when = new Date(desired).toISOString();
  // Checked even when the time is already set: an Update that makes the AMI public keeps it.
  if (spec.sharing.public && desired - createdAt > MAX_PUBLIC_DEPRECATION_MS) {
    throw new BuildFailure(`Cannot deprecate the public AMI ${image.ImageId} at ${when}: EC2 allows a public AMI at most 2 years after its creation. Choose a shorter deprecateAfter.`);
  }
  if (current === desired) {
    return undefined;
  }
  if (desired <= now) {
    throw new BuildFailure(`Cannot deprecate AMI ${image.ImageId} at ${when} (${spec.deprecateAfterSeconds} s after its creation): that time has passed, and EC2 refuses a deprecation time in the past. Choose a longer deprecateAfter.`);
  }
  if (desired - now > MAX_DEPRECATION_MS) {
    throw new BuildFailure(`Cannot deprecate AMI ${image.ImageId} at ${when}: EC2 allows at most 10 years ahead. Choose a shorter deprecateAfter.`);
  }
  return desired;
}

async function applyProtection(ctx: DistributionContext, image: Image): Promise<void> {
  const imageId = image.ImageId!;
  const current = image.DeregistrationProtection ?? PROTECTION_VALUES[DeregistrationProtectionKind.OFF];
  const desired = PROTECTION_VALUES[ctx.spec.protection];
  if (current === desired) {
    return;
  }
  if (ctx.spec.protection === DeregistrationProtectionKind.OFF) {
    if (current.startsWith('enabled')) {
      await withRetry('ec2:DisableImageDeregistrationProtection', () => ctx.ec2.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId })));
      ctx.log.step('disable-deregistration-protection', { imageId, was: current });
    }
    return;
  }
  await withRetry('ec2:EnableImageDeregistrationProtection', () => ctx.ec2.send(new EnableImageDeregistrationProtectionCommand({
    ImageId: imageId,
    WithCooldown: ctx.spec.protection === DeregistrationProtectionKind.ON_WITH_COOLDOWN,
  })));
  ctx.log.step('enable-deregistration-protection', { imageId, protection: desired, was: current });
}
