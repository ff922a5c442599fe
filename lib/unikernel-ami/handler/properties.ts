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
  HelperInstanceBuildProperties,
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
  };
}

/** Properties whose change means a different disk or AMI, hence a new build (and a new physical id). */
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

/**
 * What identifies a build's result: a hash of REBUILD_PROPERTIES. Two builds with the same hash
 * make the same AMI, so a rollback to old properties can return the old build instead of a new one.
 */
export function propertiesHash(props: UnikernelAmiProperties): string {
  const values = REBUILD_PROPERTIES.map((key) => [key, String(props[key] ?? '')]);
  return createHash('sha256').update(JSON.stringify(values)).digest('hex').slice(0, 32);
}

const RESERVED_TAG_KEYS: ReadonlySet<string> = new Set(BUILD_OWNED_TAG_KEYS);

/** Whether a tag key is one the build sets itself (not a user tag). */
export function isReservedTagKey(key: string): boolean {
  return RESERVED_TAG_KEYS.has(key);
}

/** The user's tags without the keys the build sets itself (those always win). */
export function userTagList(userTags: { readonly [key: string]: string }): Tag[] {
  return Object.entries(userTags)
    .filter(([key]) => !RESERVED_TAG_KEYS.has(key))
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
