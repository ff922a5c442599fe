/**
 * The resource properties as the handler uses them: parsed from CloudFormation's strings, and the
 * tags every resource of a build carries.
 */
import { createHash } from 'crypto';
import { DiskLayout } from '../../disk-image';
import { KernelArchitecture } from '../../pv-grub';
import {
  AmiRemovalKind,
  BUILD_ID_TAG,
  BUILD_OWNED_TAG_KEYS,
  BuildStrategyKind,
  DeregistrationProtectionKind,
  HelperInstanceBuildProperties,
  IMAGE_USER_TAG_PREFIX,
  MANAGED_TAG,
  NAME_TAG,
  PROPERTIES_TAG,
  RESOURCE_TAG,
  STACK_ID_TAG,
  STACK_TAG,
  UnikernelAmiProperties,
} from '../types';

export interface Tag {
  readonly Key: string;
  readonly Value: string;
}

/** The build's settings, typed. */
export interface BuildSpec {
  readonly kernelBucket: string;
  readonly kernelKey: string;
  readonly kernelObjectVersion?: string;
  readonly name: string;
  readonly kernelArgs: string;
  readonly layout: DiskLayout;
  readonly volumeSizeGiB: number;
  readonly architecture: KernelArchitecture;
  readonly kernelId: string;
  readonly encrypted: boolean;
  readonly kmsKeyArn?: string;
  readonly removal: AmiRemovalKind;
  readonly strategy: BuildStrategyKind;
  readonly stagingBucket?: string;
  readonly helper?: HelperInstanceBuildProperties;
  readonly userTags: { readonly [key: string]: string };
  /** What every AMI name of the resource starts with (ImageName, or Name). */
  readonly imageNamePrefix: string;
  /** The AMI's description; absent: the handler's default. */
  readonly imageDescription?: string;
  readonly sharing: ImageSharingSpec;
  /** Seconds after the AMI's creation at which it is deprecated; absent: never. */
  readonly deprecateAfterSeconds?: number;
  readonly protection: DeregistrationProtectionKind;
}

/** Who may launch the AMI and create volumes from its snapshot (ImageSharingProperties, typed). */
export interface ImageSharingSpec {
  readonly accounts: readonly string[];
  readonly organizationArns: readonly string[];
  readonly organizationalUnitArns: readonly string[];
  readonly snapshotAccounts: readonly string[];
  readonly public: boolean;
}

/** Nobody else may launch the AMI or read its snapshot. */
export const NO_SHARING: ImageSharingSpec = { accounts: [], organizationArns: [], organizationalUnitArns: [], snapshotAccounts: [], public: false };

/** Whether anyone besides the account may launch the AMI or read its snapshot. */
export function isShared(sharing: ImageSharingSpec): boolean {
  return sharing.public || [sharing.accounts, sharing.organizationArns, sharing.organizationalUnitArns, sharing.snapshotAccounts].some((list) => list.length > 0);
}

function oneOf<T extends string>(property: string, value: string, allowed: Record<string, T>): T {
  const values = Object.values(allowed);
  if (!values.includes(value as T)) {
    throw new Error(`Invalid resource property ${property} ${JSON.stringify(value)}: expected one of ${values.join(', ')}. Redeploy with the construct, which sets it.`);
  }
  return value as T;
}

/** Checks and types the properties; an error names the property, its value and what was expected. */
export function parseProperties(props: UnikernelAmiProperties): BuildSpec {
  const volumeSizeGiB = Number(props.VolumeSizeGiB);
  if (!/^[0-9]+$/.test(String(props.VolumeSizeGiB)) || volumeSizeGiB < 1) {
    throw new Error(`Invalid resource property VolumeSizeGiB ${JSON.stringify(props.VolumeSizeGiB)}: expected a whole number of GiB (at least 1).`);
  }
  for (const required of ['KernelBucket', 'KernelKey', 'Name', 'KernelId'] as const) {
    if (!props[required]) {
      throw new Error(`Missing resource property ${required}: the construct always sets it; redeploy with the construct.`);
    }
  }
  const strategy = oneOf('Strategy', props.Strategy, BuildStrategyKind);
  if (strategy === BuildStrategyKind.HELPER_INSTANCE && (!props.StagingBucket || !props.Helper)) {
    throw new Error('The helper-instance strategy needs the resource properties StagingBucket and Helper, but they are missing. Redeploy with the construct, which sets them.');
  }
  return {
    kernelBucket: props.KernelBucket,
    kernelKey: props.KernelKey,
    kernelObjectVersion: props.KernelObjectVersion || undefined,
    name: props.Name,
    kernelArgs: props.KernelArgs ?? '',
    layout: oneOf('Layout', props.Layout, DiskLayout),
    volumeSizeGiB,
    architecture: oneOf('Architecture', props.Architecture, KernelArchitecture),
    kernelId: props.KernelId,
    encrypted: oneOf('Encrypted', String(props.Encrypted), { TRUE: 'true', FALSE: 'false' }) === 'true',
    kmsKeyArn: props.KmsKeyArn || undefined,
    removal: oneOf('RemovalPolicy', props.RemovalPolicy, AmiRemovalKind),
    strategy,
    stagingBucket: props.StagingBucket,
    helper: props.Helper,
    userTags: props.Tags ?? {},
    imageNamePrefix: imageNamePrefixOf(props),
    imageDescription: props.ImageDescription || undefined,
    sharing: parseSharing(props),
    deprecateAfterSeconds: parseDeprecation(props.DeprecateAfterSeconds),
    protection: props.DeregistrationProtection ? oneOf('DeregistrationProtection', props.DeregistrationProtection, DeregistrationProtectionKind) : DeregistrationProtectionKind.OFF,
  };
}

/** What the resource's AMI names start with: ImageName, or Name (the handler appends `-<build id>`). */
export function imageNamePrefixOf(props: UnikernelAmiProperties): string {
  return props.ImageName || props.Name;
}

function parseSharing(props: UnikernelAmiProperties): ImageSharingSpec {
  const list = (property: keyof ImageSharingSpec, values: unknown, pattern: RegExp): string[] => {
    if (values === undefined) {
      return [];
    }
    if (!Array.isArray(values) || values.some((value) => typeof value !== 'string' || !pattern.test(value))) {
      throw new Error(`Invalid resource property Sharing.${property} ${JSON.stringify(values)}: expected a list of ${pattern.source}. Redeploy with the construct, which validates it.`);
    }
    return [...new Set(values as string[])].sort();
  };
  const sharing = props.Sharing ?? {};
  return {
    accounts: list('accounts', sharing.Accounts, ACCOUNT_ID),
    organizationArns: list('organizationArns', sharing.OrganizationArns, ORGANIZATION_ARN),
    organizationalUnitArns: list('organizationalUnitArns', sharing.OrganizationalUnitArns, OU_ARN),
    snapshotAccounts: list('snapshotAccounts', sharing.SnapshotAccounts, ACCOUNT_ID),
    public: String(sharing.Public ?? '') === 'true',
  };
}
const ACCOUNT_ID = /^[0-9]{12}$/;
const ORGANIZATION_ARN = /^arn:aws[a-z-]*:organizations::[0-9]{12}:organization\/o-[a-z0-9]{10,32}$/;
const OU_ARN = /^arn:aws[a-z-]*:organizations::[0-9]{12}:ou\/o-[a-z0-9]{10,32}\/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$/;

function parseDeprecation(value: string | undefined): number | undefined {
  if (value === undefined || value === '') {
    return undefined;
  }
  if (!/^[0-9]+$/.test(String(value)) || Number(value) < 60) {
    throw new Error(`Invalid resource property DeprecateAfterSeconds ${JSON.stringify(value)}: expected a whole number of seconds, at least 60. Redeploy with the construct, which sets it.`);
  }
  return Number(value);
}

/**
 * Properties whose change means a different disk, hence a new build (and a new physical id). The
 * others are applied to the AMI in place (tags, description, sharing, deprecation, protection), or,
 * for ImageName, the same snapshot is registered again under the new name (EC2 cannot rename an AMI).
 */
const REBUILD_PROPERTIES: readonly (keyof UnikernelAmiProperties)[] = [
  'KernelBucket',
  'KernelKey',
  'KernelObjectVersion',
  'Name',
  'KernelArgs',
  'Layout',
  'VolumeSizeGiB',
  'Architecture',
  'KernelId',
  'Encrypted',
  'KmsKeyArn',
  'Strategy',
];

/** The properties of REBUILD_PROPERTIES that differ, empty when the AMI can stay. */
export function changedRebuildProperties(oldProps: UnikernelAmiProperties, newProps: UnikernelAmiProperties): string[] {
  return REBUILD_PROPERTIES.filter((key) => (oldProps[key] ?? '') !== (newProps[key] ?? ''));
}

/** Whether the AMI's name changes: the same disk is then registered again under the new name. */
export function imageNameChanged(oldProps: UnikernelAmiProperties, newProps: UnikernelAmiProperties): boolean {
  return imageNamePrefixOf(oldProps) !== imageNamePrefixOf(newProps);
}

/**
 * What identifies a build's result: a hash of REBUILD_PROPERTIES and of the AMI's name. Two builds
 * with the same hash make the same AMI, so a rollback to old properties can return the old build
 * instead of a new one (a rebuild's, or a rename's). An ImageName that names nothing else than Name
 * leaves the hash as releases before ImageName computed it, so their builds are still found.
 */
export function propertiesHash(props: UnikernelAmiProperties): string {
  const values: string[][] = REBUILD_PROPERTIES.map((key) => [key, String(props[key] ?? '')]);
  if (imageNamePrefixOf(props) !== props.Name) {
    values.push(['ImageName', imageNamePrefixOf(props)]);
  }
  return createHash('sha256').update(JSON.stringify(values)).digest('hex').slice(0, 32);
}

const RESERVED_TAG_KEYS: ReadonlySet<string> = new Set(BUILD_OWNED_TAG_KEYS);

/** Whether a tag key is one the build sets itself (not a user tag). */
export function isReservedTagKey(key: string): boolean {
  return RESERVED_TAG_KEYS.has(key) || key.startsWith(IMAGE_USER_TAG_PREFIX);
}

/** The user's tags without the keys the build sets itself (those always win). */
export function userTagList(userTags: { readonly [key: string]: string }): Tag[] {
  return Object.entries(userTags)
    .filter(([key]) => !isReservedTagKey(key))
    .map(([Key, Value]) => ({ Key, Value }));
}

/** Which build, of which custom resource, in which stack: what a build's tags say about it. */
export interface BuildIdentity {
  readonly buildId: string;
  readonly stackId: string;
  readonly logicalId: string;
  readonly propertiesHash: string;
}

/**
 * The tags of everything a build creates. Delete and the IAM conditions rely on the build's own ones
 * (managed, stack, build id); a later event of the same resource finds the build by its resource
 * tag, a rollback by its properties hash.
 */
export function buildTags(identity: BuildIdentity, spec: BuildSpec): Tag[] {
  return [
    ...userTagList(spec.userTags),
    { Key: NAME_TAG, Value: spec.name },
    { Key: BUILD_ID_TAG, Value: identity.buildId },
    { Key: STACK_TAG, Value: stackNameOf(identity.stackId) },
    { Key: STACK_ID_TAG, Value: identity.stackId },
    { Key: MANAGED_TAG, Value: 'true' },
    { Key: RESOURCE_TAG, Value: identity.logicalId },
    { Key: PROPERTIES_TAG, Value: identity.propertiesHash },
  ];
}

/** `arn:aws:cloudformation:region:account:stack/<name>/<guid>` -> `<name>`; anything else as is. */
export function stackNameOf(stackId: string): string {
  return stackId.split('/')[1] ?? stackId;
}

/** An EC2 Describe* filter that selects a build's resources. */
export function buildFilter(buildId: string) {
  return { Name: `tag:${BUILD_ID_TAG}`, Values: [buildId] };
}

/**
 * EC2 Describe* filters that select every build of one custom resource of one stack (this
 * incarnation: builds of releases before STACK_ID_TAG carry it once migrateBuildTags has run).
 */
export function resourceFilters(stackId: string, logicalId: string) {
  return [
    { Name: `tag:${STACK_ID_TAG}`, Values: [stackId] },
    { Name: `tag:${RESOURCE_TAG}`, Values: [logicalId] },
  ];
}
