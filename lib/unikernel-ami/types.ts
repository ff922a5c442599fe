/**
 * The contract between the construct and its custom-resource handler. Both import this module, so
 * the property names cannot drift apart. These names are a contract with deployed stacks: do not
 * rename them.
 *
 * CloudFormation passes every custom-resource property to the handler as a string, so numbers and
 * booleans travel as strings here too.
 */

/** The CloudFormation type of the custom resource. */
export const UNIKERNEL_AMI_RESOURCE_TYPE = 'Custom::MirageUnikernelAmi';

/** How the handler writes the disk image into an EBS snapshot. */
export enum BuildStrategyKind {
  /** A transient helper instance writes the image onto an EBS volume, which is then snapshotted. */
  HELPER_INSTANCE = 'helper-instance',
  /** The EBS direct APIs write the image straight into a new snapshot. */
  EBS_DIRECT = 'ebs-direct',
}

/** What the resource's deletion does to the AMI and its snapshot. */
export enum AmiRemovalKind {
  /** Deregister the AMI and delete its snapshot. */
  DESTROY = 'destroy',
  /** Leave the AMI and its snapshot in the account. */
  RETAIN = 'retain',
}

/** Properties of the helper-instance build, present when `Strategy` is `helper-instance`. */
export interface HelperInstanceBuildProperties {
  /** Instance type of the helper that writes the volume. */
  readonly InstanceType: string;
  /** Subnet the helper is launched in. */
  readonly SubnetId: string;
  /**
   * Every subnet the helper may be launched in, one per availability zone, SubnetId first. When EC2
   * has no capacity for the instance type in one zone (InsufficientInstanceCapacity), the handler
   * tries the next. Absent from stacks deployed before it existed: then SubnetId only.
   */
  readonly SubnetIds?: string[];
  /** Security group of the helper (no inbound rules). */
  readonly SecurityGroupId: string;
  /** ARN of the instance profile of the helper. */
  readonly InstanceProfileArn: string;
  /** AMI id of the helper's operating system (Amazon Linux 2023, from the public SSM parameter). */
  readonly ImageId: string;
}

/** The resource properties of `Custom::MirageUnikernelAmi`, as the handler receives them. */
export interface UnikernelAmiProperties {
  /** Bucket that holds the kernel. */
  readonly KernelBucket: string;
  /** Key of the kernel object. */
  readonly KernelKey: string;
  /** Version of the kernel object, if the bucket is versioned. */
  readonly KernelObjectVersion?: string;
  /** Name of the unikernel: menu.lst title, kernel file name, AMI name prefix, Name tag. */
  readonly Name: string;
  /** Kernel command line, possibly empty. */
  readonly KernelArgs: string;
  /** Disk layout: `whole` (filesystem on the whole volume) or `mbr` (first MBR partition). */
  readonly Layout: string;
  /** Volume (and snapshot) size in GiB, as a decimal string. */
  readonly VolumeSizeGiB: string;
  /** `x86_64` or `i386`. */
  readonly Architecture: string;
  /** The PV-GRUB AKI registered as the AMI's kernel. */
  readonly KernelId: string;
  /** `true` to encrypt the snapshot. */
  readonly Encrypted: string;
  /** KMS key for encryption; absent for the AWS managed key. */
  readonly KmsKeyArn?: string;
  /** `destroy` or `retain` (AmiRemovalKind). */
  readonly RemovalPolicy: string;
  /** `helper-instance` or `ebs-direct` (BuildStrategyKind). */
  readonly Strategy: string;
  /** Bucket where the handler stages the disk image for the helper; present for `helper-instance`. */
  readonly StagingBucket?: string;
  /** Settings of the helper-instance build. */
  readonly Helper?: HelperInstanceBuildProperties;
  /** Tags applied to everything the build creates, besides the build's own tags. */
  readonly Tags?: { readonly [key: string]: string };
  /**
   * Prefix of the AMI's name; the handler appends `-<build id>` so that a rebuild, which registers
   * its AMI before the old one goes, never collides. Absent: `Name`. A change registers the same
   * snapshot again under the new name (a new image id, no new disk).
   */
  readonly ImageName?: string;
  /** The AMI's description, changed in place on Update. Absent: the handler's default description. */
  readonly ImageDescription?: string;
  /** Who may launch the AMI (and create volumes from its snapshot); granted and revoked on Update. Absent: nobody else. */
  readonly Sharing?: ImageSharingProperties;
  /**
   * Seconds after the AMI's creation at which EC2 deprecates it (EnableImageDeprecation), as a
   * decimal string. The time is counted from the image's creation date, so an Update of another
   * property never moves it. Absent: no deprecation.
   */
  readonly DeprecateAfterSeconds?: string;
  /** `off`, `on` or `on-with-cooldown` (DeregistrationProtectionKind). Absent: `off`. */
  readonly DeregistrationProtection?: string;
}

/** Launch and create-volume permissions of the AMI, as the handler receives them. */
export interface ImageSharingProperties {
  /** Account ids (12 digits) given launch permission. */
  readonly Accounts?: string[];
  /** Organization ARNs given launch permission. */
  readonly OrganizationArns?: string[];
  /** Organizational unit ARNs given launch permission. */
  readonly OrganizationalUnitArns?: string[];
  /** Account ids given create-volume permission on the root snapshot (exposes the disk's contents). */
  readonly SnapshotAccounts?: string[];
  /** `true` to give launch permission to everyone (group `all`); anything else: not public. */
  readonly Public?: string;
}

/** The values of `DeregistrationProtection`. */
export enum DeregistrationProtectionKind {
  /** Not protected. */
  OFF = 'off',
  /** EnableImageDeregistrationProtection without cooldown: a Delete disables it, then deregisters. */
  ON = 'on',
  /** With cooldown: protection lasts 24 hours after it is disabled; the construct allows it with RETAIN only. */
  ON_WITH_COOLDOWN = 'on-with-cooldown',
}

/** Attributes the resource returns (`Fn::GetAtt`). */
export interface UnikernelAmiAttributes {
  /** The registered AMI. */
  readonly ImageId: string;
  /** The snapshot behind the AMI's root volume. */
  readonly SnapshotId: string;
  /** The PV-GRUB AKI of the AMI. */
  readonly KernelId: string;
  /** The AMI's full name (ImageName or Name, then `-<build id>`). */
  readonly ImageName?: string;
}

/** Tag keys the handler puts on everything it creates, so that Delete can find what a build left. */
export const BUILD_ID_TAG = 'mirage-unikernel-ami:build-id';
/**
 * The name of the stack (from the event's StackId). Releases before STACK_ID_TAG scoped the handler
 * role by it; a name comes back when a deleted stack is created again, so it now only names the
 * stack for people, and lets the handler role find and migrate what those releases built.
 */
export const STACK_TAG = 'mirage-unikernel-ami:stack';
/**
 * The stack's id (`arn:...:stack/<name>/<uuid>`, the event's StackId), unique to one incarnation of
 * the stack. The handler role's policies require it, with MANAGED_TAG, on everything the handler
 * creates or changes: one stack's handler cannot touch another stack's resources, nor those of an
 * earlier stack of the same name.
 */
export const STACK_ID_TAG = 'mirage-unikernel-ami:stack-id';
export const NAME_TAG = 'Name';
/** `true` on everything the handler creates; the IAM conditions require it beside STACK_TAG. */
export const MANAGED_TAG = 'mirage-unikernel-ami:managed';
/** Tag key naming the custom resource (its logical id) a build belongs to, so that a later event of that resource finds its failed builds. */
export const RESOURCE_TAG = 'mirage-unikernel-ami:resource';
/** Tag key holding a hash of the properties a build was made from, so that a rollback finds the build that still exists. */
export const PROPERTIES_TAG = 'mirage-unikernel-ami:properties';
/** Tag key the Delete of a retained build puts on its AMI and snapshot: they are no longer the resource's, and a rollback must not adopt them. */
export const RETAINED_TAG = 'mirage-unikernel-ami:retained';
/**
 * Tag key of a build's record (handler/build-record.ts): on the AMI and its root snapshot once the
 * build is complete, on what a failed build leaves once it has failed.
 */
export const BUILD_RECORD_TAG = 'mirage-unikernel-ami:build-record';
/**
 * Prefix of the tag keys, `<prefix><build id>`, that a snapshot carries for each further AMI that
 * uses it (a rename registers the same snapshot again under a new name); the value is that AMI's
 * id. The build that wrote the snapshot is named by BUILD_ID_TAG and its record instead. A Delete
 * keeps a snapshot that another AMI named this way still uses.
 */
export const IMAGE_USER_TAG_PREFIX = 'mirage-unikernel-ami:image-user:';

/**
 * The tag keys the build sets itself and relies on (IAM conditions, cleanup, rollback): never a user
 * tag, and never removable by the handler role (its DeleteTags statement refuses them).
 */
export const BUILD_OWNED_TAG_KEYS: readonly string[] = [MANAGED_TAG, STACK_TAG, STACK_ID_TAG, BUILD_ID_TAG, NAME_TAG, RESOURCE_TAG, PROPERTIES_TAG, RETAINED_TAG, BUILD_RECORD_TAG];

/**
 * Prefix of everything the handler keeps in the staging bucket for a helper build
 * (`builds/<build id>/...`): the construct's policies and lifecycle rule name it, the handler writes under it.
 */
export const STAGING_PREFIX = 'builds/';
/** The name of a build's progress object under its prefix (handler/progress.ts), which the handler role may read back. */
export const PROGRESS_OBJECT_NAME = 'progress.json';
/** The only SSM document the handler runs on its helpers, and the only one its role may run. */
export const HELPER_SSM_DOCUMENT = 'AWS-RunShellScript';

/**
 * The volumes RunInstances creates for a helper, named in its block device mappings so that the
 * handler role can bound every volume a launch creates by type and size (ec2:VolumeType,
 * ec2:VolumeSize) without depending on what the AMI's own mapping says.
 */
export const HELPER_VOLUMES = {
  /** Both volumes are transient and written once; gp3 is the cheapest general-purpose type. */
  volumeType: 'gp3',
  /** The data volume the image is written onto; on Nitro it shows up as an NVMe device whose serial is the volume id. */
  dataDeviceName: '/dev/sdf',
  /** Amazon Linux 2023's root device. */
  rootDeviceName: '/dev/xvda',
  /**
   * Amazon Linux 2023's root volume: its AMIs map an 8 GiB gp3 root. A mapping may grow the root
   * beyond the AMI's snapshot but not shrink it below: should AWS ever publish a larger AL2023 root,
   * RunInstances refuses the launch (InvalidBlockDeviceMapping) until this value follows it.
   */
  rootSizeGiB: 8,
} as const;

/**
 * Time budget of one custom-resource operation, shared by the construct (the Lambdas' timeouts and
 * the provider's waiter) and the handler (its own deadline). CloudFormation waits at most one hour
 * for a custom resource (ServiceTimeout 1-3600 s): the framework's onEvent runs the handler's onEvent
 * (at most `onEventSeconds`), then the waiter polls isComplete every `queryIntervalSeconds` for up to
 * `waiterTotalSeconds`, and its last isComplete may run `isCompleteSeconds`. Their sum stays within
 * `serviceTimeoutSeconds`, so the provider answers before CloudFormation gives up.
 *
 * The handler fails a build (or removal) that has not finished `handlerDeadlineSeconds` after its
 * onEvent began, early enough that its last isComplete, cleanup included, reports before the
 * waiter's total timeout would turn the failure into the framework's opaque "Operation timed out".
 *
 * While a build waits for AWS, one isComplete looks again every `isCompletePollStepSeconds` for up to
 * `isCompletePollWindowSeconds` before it answers "not complete" (handler/index.ts), in the build's
 * first `isCompletePollBuildSeconds`: with the
 * waiter's 10-second interval, a state AWS reaches is acted on at most one interval later, and a
 * build needs no more invocations than the waiter's former 15-second polling alone (measured on the
 * fake: `npm run bench`, bench/waits.ts). The window leaves isComplete's failure cleanup its time.
 */
export const OPERATION_TIMING = {
  onEventSeconds: 10 * 60,
  isCompleteSeconds: 5 * 60,
  queryIntervalSeconds: 10,
  isCompletePollWindowSeconds: 10,
  // Every 5 s rather than less: each look repeats the round's Describe and Get requests.
  isCompletePollStepSeconds: 5,
  // Only in a build's first 10 minutes, in which builds of either strategy finish (bench/waits.ts:
  // at most 8 minutes): a build still waiting after that waits out something unusual (capacity,
  // a stuck state, a permission being fixed), where looking more often only costs requests.
  isCompletePollBuildSeconds: 10 * 60,
  waiterTotalSeconds: 45 * 60,
  serviceTimeoutSeconds: 3600,
  handlerDeadlineSeconds: 38 * 60,
} as const;
