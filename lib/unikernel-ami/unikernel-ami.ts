import {
  Annotations,
  CfnResource,
  CustomResource,
  Duration,
  ITaggable,
  RemovalPolicy,
  Size,
  SizeRoundingBehavior,
  Stack,
  TagManager,
  TagType,
  Token,
  Tokenization,
  Lazy,
} from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DiskLayout, maxKernelBytes, validateKernelArgs, validateUnikernelName } from '../disk-image';
import { isPvInstanceType, KernelArchitecture, PV_INSTANCE_FAMILIES, PV_ROOT_DEVICE_NAME } from '../pv-grub';
import { SERVICE_TIMEOUT, UnikernelAmiBuildInfrastructure } from './build-infrastructure';
import { BuildStrategy } from './build-strategy';
import {
  checkImageDescription,
  checkImageName,
  checkParameterName,
  deprecateAfterSeconds,
  deregistrationProtectionKind,
  ImageSharing,
  sharingProperties,
} from './distribution';
import { checkInput, validationError } from './errors';
import { UnikernelKernel } from './kernel';
import { acknowledgeNagRule } from './nag-acknowledgements';
import { PvGrubKernel } from './pv-grub-kernel';
import { AmiRemovalKind, UNIKERNEL_AMI_RESOURCE_TYPE, UnikernelAmiAttributes, UnikernelAmiProperties } from './types';

/** The smallest, cheapest type of a family that runs PV AMIs. */
const DEFAULT_INSTANCE_TYPE = 't1.micro';

/** Instances launched from the unikernel's AMI. */
export interface UnikernelInstancesOptions {
  /**
   * How many instances to launch.
   * @default 1
   */
  readonly count?: number;
  /**
   * Instance type; it must belong to a family that runs PV AMIs (c1, c3, hs1, m1, m2, m3, t1).
   * @default t1.micro
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * VPC of the instances.
   * @default - the minimal VPC shared by the stack's unikernels (public subnets, no NAT gateway)
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets of the instances.
   * @default - the public subnets of the shared VPC; the default selection of a given VPC
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * Security group of the instances. Add the ingress rules your unikernel serves.
   * @default - a new security group with no inbound rule that allows all outbound traffic
   */
  readonly securityGroup?: ec2.ISecurityGroup;
  /**
   * Whether CloudWatch collects the instances' metrics every minute (detailed monitoring, charged
   * per metric) instead of every five minutes (basic monitoring, free). A unikernel runs no
   * CloudWatch agent, so these are EC2's own metrics either way.
   * @default false
   */
  readonly detailedMonitoring?: boolean;
  /**
   * Whether the instances are protected against termination through the API. While on,
   * `cdk destroy` and any change that replaces an instance fail until you turn it off again.
   * @default false
   */
  readonly terminationProtection?: boolean;
  /**
   * Whether the instances' root volumes are encrypted. An encrypted AMI (`encryption` or
   * `encryptionKey`) always gives encrypted root volumes; this also encrypts them when the AMI is
   * not, with the account's default EBS key. AWS lists EBS encryption for all instance types, but an
   * encrypted root volume on the older PV families (C1, HS1, M1, M2, T1) is not confirmed by any
   * launch report: a synth warning says so.
   * @default - encrypted exactly when the AMI is
   */
  readonly encryptRootVolume?: boolean;
}

/** Properties of a MirageUnikernelAmi. */
export interface MirageUnikernelAmiProps {
  /** The Xen PV kernel to boot. */
  readonly kernel: UnikernelKernel;
  /**
   * Name of the unikernel (as MirageOS registers it): the menu.lst title, the kernel's file name in
   * /boot, the prefix of the AMI name and the Name tag. Letters, digits, '.', '_' and '-'.
   */
  readonly name: string;
  /**
   * Kernel command line, e.g. MirageOS boot parameters such as `--hello=world`.
   * @default ''
   */
  readonly kernelArgs?: string;
  /**
   * Where the filesystem sits on the volume.
   * @default DiskLayout.WHOLE_VOLUME
   */
  readonly layout?: DiskLayout;
  /**
   * Size of the root volume (and snapshot); a whole number of GiB.
   * @default Size.gibibytes(1)
   */
  readonly volumeSize?: Size;
  /**
   * Architecture of the kernel.
   * @default - what inspecting a kernel file found; x86_64 for a kernel in S3
   */
  readonly architecture?: KernelArchitecture;
  /**
   * The PV-GRUB kernel (AKI) that boots the unikernel.
   * @default PvGrubKernel.forRegion()
   */
  readonly pvGrubKernel?: PvGrubKernel;
  /**
   * Whether to encrypt the snapshot (and so the instances' root volumes).
   * @default - true when `encryptionKey` is given, false otherwise
   */
  readonly encryption?: boolean;
  /**
   * KMS key that encrypts the snapshot; implies `encryption`.
   * @default - the AWS managed key for EBS when `encryption` is true
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * What deleting the resource does to the AMI and its snapshot: DESTROY deregisters and deletes
   * them, RETAIN keeps them in the account.
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * How the disk image is written into the snapshot.
   * @default BuildStrategy.helperInstance()
   */
  readonly buildStrategy?: BuildStrategy;
  /**
   * Instances to launch from the AMI.
   * @default - none
   */
  readonly instances?: UnikernelInstancesOptions;
  /**
   * The start of the AMI's name: 1 to 107 characters of letters, digits, spaces and ( ) [ ] . / - ' @ _.
   * EC2 holds one image per name, and a rebuild registers its AMI before the old one is deregistered,
   * so the handler appends a unique suffix, `-<build id>` (21 characters: `-mua-` and 16 hexadecimal
   * digits); the `imageName` attribute is the whole name. EC2 cannot rename an AMI: a change
   * registers the same snapshot again under the new name, which gives a new image id but no new disk.
   * @default - `name`
   */
  readonly imageName?: string;
  /**
   * The AMI's description, 1 to 255 characters. A change is applied to the AMI in place.
   * @default - the unikernel's name and the build id
   */
  readonly imageDescription?: string;
  /**
   * Who else may launch the AMI (launch permissions) or read its snapshot (create-volume
   * permissions). Granted and revoked on every update, without rebuilding the disk.
   * @default - only this account
   */
  readonly sharing?: ImageSharing;
  /**
   * How long after its creation EC2 deprecates the AMI (EnableImageDeprecation). The time is fixed
   * from the image's creation date, so an update of another prop does not move it. At least 1 minute,
   * at most 3650 days (730 days for a public AMI). A deprecated AMI still launches for those who name
   * its id; other accounts no longer find it in image listings.
   * @default - never deprecated
   */
  readonly deprecateAfter?: Duration;
  /**
   * Whether EC2 refuses to deregister the AMI until the protection is turned off. With
   * RemovalPolicy.DESTROY, the resource's Delete (and the cleanup of a replaced build) turns the
   * protection off before it deregisters the AMI; it guards the AMI against everyone else.
   * @default false
   */
  readonly deregistrationProtection?: boolean;
  /**
   * Whether the protection stays 24 hours after it is turned off (EC2's cooldown). Only with
   * `deregistrationProtection` and RemovalPolicy.RETAIN: no Delete could wait 24 hours to deregister.
   * @default false
   */
  readonly deregistrationProtectionCooldown?: boolean;
  /**
   * Name of an SSM parameter, created with the stack, that holds the AMI id (data type
   * `aws:ec2:image`), for other stacks, launch templates (`resolve:ssm:<name>`) or
   * `ec2.MachineImage.fromSsmParameter` in this account and region. CloudFormation owns it: it follows
   * each new image id, and goes with the stack. Systems Manager checks an `aws:ec2:image` value only
   * after PutParameter has succeeded, and an id it refuses leaves the parameter uncreated or unchanged
   * (docs/distribution.md).
   * @default - no parameter
   */
  readonly imageIdParameterName?: string;
}

/**
 * An EBS-backed paravirtual AMI that boots a Xen PV unikernel (MirageOS up to 3.8, Unikraft, Mini-OS,
 * HaLVM) with AWS PV-GRUB, and optionally instances running it.
 *
 * The kernel is checked at synth time when it is a local file; a custom resource writes an ext2
 * disk image holding /boot/grub/menu.lst and the kernel into a snapshot and registers the AMI.
 * Tags added with `Tags.of(...)` go on the AMI, the snapshot and everything the build creates.
 */
export class MirageUnikernelAmi extends Construct implements ITaggable {
  /** The AMI id. */
  public readonly imageId: string;
  /** The snapshot behind the AMI's root volume. */
  public readonly snapshotId: string;
  /** The PV-GRUB AKI of the AMI. */
  public readonly kernelId: string;
  /** The AMI's whole name: `imageName` (or `name`) and the unique suffix `-<build id>`. */
  public readonly imageName: string;
  /** The SSM parameter holding the AMI id, when `imageIdParameterName` was given. */
  public readonly imageIdParameter?: ssm.IStringParameter;
  /** The architecture of the kernel and the AMI. */
  public readonly architecture: KernelArchitecture;
  /** Instances launched from the AMI (empty unless `instances` was given). */
  public readonly instances: ec2.Instance[];
  /** Tags of the AMI, its snapshot and the build's resources. */
  public readonly tags: TagManager;
  /** The customer managed key of the snapshot, which launching needs as well. */
  private readonly encryptionKey?: kms.IKey;

  constructor(scope: Construct, id: string, props: MirageUnikernelAmiProps) {
    super(scope, id);
    this.tags = new TagManager(TagType.MAP, UNIKERNEL_AMI_RESOURCE_TYPE);

    if (!Token.isUnresolved(props.name)) {
      checkInput(this, () => validateUnikernelName(props.name));
    }
    const kernelArgs = props.kernelArgs ?? '';
    if (!Token.isUnresolved(kernelArgs)) {
      checkInput(this, () => validateKernelArgs(kernelArgs));
    }
    const layout = props.layout ?? DiskLayout.WHOLE_VOLUME;
    const volumeSizeGiB = volumeSizeInGiB(this, props.volumeSize ?? Size.gibibytes(1));
    const removal = amiRemovalKind(this, props.removalPolicy ?? RemovalPolicy.DESTROY);
    if (props.encryption === false && props.encryptionKey !== undefined) {
      throw validationError(this, 'encryptionKey was given but encryption is false: remove encryptionKey, or set encryption to true (or leave it out).');
    }
    const encrypted = props.encryption ?? props.encryptionKey !== undefined;
    this.encryptionKey = props.encryptionKey;
    const sharing = sharingProperties(this, props.sharing, { encrypted, customerManagedKey: props.encryptionKey !== undefined });
    const distribution: Partial<UnikernelAmiProperties> = {
      ImageName: checkImageName(this, props.imageName),
      ImageDescription: checkImageDescription(this, props.imageDescription),
      Sharing: sharing,
      DeprecateAfterSeconds: deprecateAfterSeconds(this, props.deprecateAfter, sharing?.Public === 'true'),
      DeregistrationProtection: deregistrationProtectionKind(this, props.deregistrationProtection, props.deregistrationProtectionCooldown, props.removalPolicy ?? RemovalPolicy.DESTROY),
    };
    if (props.imageIdParameterName !== undefined) {
      checkParameterName(this, props.imageIdParameterName);
    }

    const kernel = props.kernel.bind(this, { maxSizeBytes: maxKernelFileBytes(this, volumeSizeGiB, layout) });
    const inspected = kernel.architecture;
    if (props.architecture !== undefined && inspected !== undefined && props.architecture !== inspected) {
      throw validationError(
        this,
        `architecture is ${props.architecture}, but the kernel file is a ${inspected} kernel. ` +
        'Leave architecture out to use what the kernel says, or give the kernel built for that architecture.',
      );
    }
    this.architecture = props.architecture ?? inspected ?? KernelArchitecture.X86_64;
    const kernelId = (props.pvGrubKernel ?? PvGrubKernel.forRegion()).bind(this, this.architecture);

    const infrastructure = UnikernelAmiBuildInfrastructure.of(this);
    infrastructure.grantKernelRead(kernel.bucket, kernel.objectKey, kernel.objectVersion);
    const build = (props.buildStrategy ?? BuildStrategy.helperInstance())._bind(infrastructure, { volumeSizeGiB, encryptionKey: props.encryptionKey });

    const properties: UnikernelAmiProperties = {
      KernelBucket: kernel.bucket.bucketName,
      KernelKey: kernel.objectKey,
      KernelObjectVersion: kernel.objectVersion,
      Name: props.name,
      KernelArgs: kernelArgs,
      Layout: layout,
      VolumeSizeGiB: Tokenization.stringifyNumber(volumeSizeGiB),
      Architecture: this.architecture,
      KernelId: kernelId,
      Encrypted: String(encrypted),
      KmsKeyArn: props.encryptionKey?.keyArn,
      RemovalPolicy: removal,
      Strategy: build.strategy,
      StagingBucket: build.stagingBucketName,
      Helper: build.helper,
      Tags: Lazy.any({ produce: () => this.tags.renderTags() }) as unknown as { [key: string]: string },
      // Each absent when not asked for, so that a stack that uses none of them keeps its properties
      // (and CloudFormation sends no Update) when it upgrades to a release that has them.
      ...distribution,
    };
    const resource = new CustomResource(this, 'Resource', {
      serviceToken: infrastructure.provider.serviceToken,
      resourceType: UNIKERNEL_AMI_RESOURCE_TYPE,
      properties,
      // Explicit, and consistent with the provider's own timeouts (see SERVICE_TIMEOUT).
      serviceTimeout: SERVICE_TIMEOUT,
      // Always Delete in CloudFormation, so the handler hears of every deletion and removes what a
      // build left behind (helper, volume, staged image); it keeps the AMI when RemovalPolicy is retain.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    resource.node.addDependency(infrastructure.handlerRole);

    const attribute = (name: keyof UnikernelAmiAttributes) => resource.getAttString(name);
    this.imageId = attribute('ImageId');
    this.snapshotId = attribute('SnapshotId');
    this.kernelId = attribute('KernelId');
    this.imageName = attribute('ImageName');
    if (props.imageIdParameterName !== undefined) {
      this.imageIdParameter = new ssm.StringParameter(this, 'ImageIdParameter', {
        parameterName: props.imageIdParameterName,
        simpleName: isSimpleParameterName(props.imageIdParameterName),
        stringValue: this.imageId,
        dataType: ssm.ParameterDataType.AWS_EC2_IMAGE,
        description: `AMI id of the ${props.name} unikernel (mirage-unikernel-ami)`,
      });
    }
    this.instances = props.instances === undefined ? [] : this.launchInstances(props.instances, infrastructure, props.name, {
      volumeSizeGiB,
      amiEncrypted: encrypted,
      encryptionKey: props.encryptionKey,
    });
  }

  /** The AMI as a machine image for ec2.Instance, launch templates or auto scaling groups. */
  public machineImage(): ec2.IMachineImage {
    const imageId = this.imageId;
    return {
      getImage: () => ({
        imageId,
        osType: ec2.OperatingSystemType.LINUX,
        // A unikernel reads no user data.
        userData: ec2.UserData.custom(''),
      }),
    };
  }

  /**
   * Lets `grantee`, a principal of this account, launch instances from this AMI: ec2:RunInstances
   * on the image and, when the AMI is encrypted with a customer managed key, what EC2 then asks of
   * the key on the caller's behalf (through EC2 of this region only). The rest of a launch (the
   * instance, its subnet, security groups, volumes) is the grantee's own to be allowed. Another
   * account launches the AMI through `sharing`, and its own IAM policies.
   */
  public grantLaunch(grantee: iam.IGrantable): iam.Grant {
    const stack = Stack.of(this);
    const image = iam.Grant.addToPrincipal({
      grantee,
      actions: ['ec2:RunInstances'],
      // An image ARN has no account (arn:<partition>:ec2:<region>::image/<id>).
      resourceArns: [stack.formatArn({ service: 'ec2', account: '', resource: 'image', resourceName: this.imageId })],
    });
    if (this.encryptionKey === undefined) {
      // Unencrypted, or the AWS managed key, whose key policy lets EC2 use it for the whole account.
      return image;
    }
    const viaEc2 = { 'kms:ViaService': `ec2.${stack.region}.${stack.urlSuffix}` };
    // What EBS encryption asks of the caller's permissions on a customer managed key (EBS user guide,
    // "Requirements for Amazon EBS encryption"); ReEncrypt when the root volume's key differs from the
    // snapshot's. Which of these a launch from an encrypted snapshot uses is not documented action by action.
    const grant = iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:CreateGrant'],
      resourceArns: [this.encryptionKey.keyArn],
      conditions: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    });
    const use = iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'],
      resourceArns: [this.encryptionKey.keyArn],
      conditions: { StringEquals: viaEc2 },
    });
    return image.combine(grant).combine(use);
  }

  private launchInstances(options: UnikernelInstancesOptions, infrastructure: UnikernelAmiBuildInfrastructure, name: string, root: RootVolume): ec2.Instance[] {
    const count = options.count ?? 1;
    if (!Token.isUnresolved(count) && (!Number.isInteger(count) || count < 1)) {
      throw validationError(this, `instances.count is ${count}: give a whole number of instances, 1 or more (leave instances out for none).`);
    }
    const instanceType = options.instanceType ?? new ec2.InstanceType(DEFAULT_INSTANCE_TYPE);
    if (!Token.isUnresolved(instanceType.toString()) && !isPvInstanceType(instanceType.toString())) {
      throw validationError(
        this,
        `instances.instanceType ${instanceType} cannot run a paravirtual AMI: current-generation instance types do not support PV. ` +
        `Use a type of the ${PV_INSTANCE_FAMILIES.join(', ')} families, e.g. t1.micro or m3.medium.`,
      );
    }
    const vpc = options.vpc ?? infrastructure.defaultVpc;
    const vpcSubnets = options.vpcSubnets ?? (options.vpc === undefined ? { subnetType: ec2.SubnetType.PUBLIC } : undefined);
    const securityGroup = options.securityGroup ?? new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc,
      allowAllOutbound: true,
      description: `${name} unikernel instances: no inbound rule until you add one`,
    });
    const detailedMonitoring = options.detailedMonitoring ?? false;
    const terminationProtection = options.terminationProtection ?? false;
    const encryptRoot = options.encryptRootVolume ?? root.amiEncrypted;
    if (options.encryptRootVolume === false && root.amiEncrypted) {
      throw validationError(this, 'instances.encryptRootVolume is false, but the AMI is encrypted (encryption or encryptionKey), so its instances\' root volumes are too. ' +
        'Leave encryptRootVolume out, or build an unencrypted AMI.');
    }
    const family = /^([a-z0-9]+)\./i.exec(instanceType.toString())?.[1]?.toLowerCase();
    if (encryptRoot && family !== undefined && UNCONFIRMED_ENCRYPTION_FAMILIES.includes(family)) {
      Annotations.of(this).addWarningV2('mirage-unikernel-ami:encryptedRootUnconfirmed',
        `Encrypted root volumes on ${instanceType} instances are not confirmed: AWS lists EBS encryption for all instance types, but no launch ` +
        `report confirms it for the ${UNCONFIRMED_ENCRYPTION_FAMILIES.join(', ')} PV families. If the instances do not start, use an m3 or c3 type.`);
    }
    const instances: ec2.Instance[] = [];
    for (let i = 0; i < count; i++) {
      const instance = new ec2.Instance(this, `Instance${i + 1}`, {
        vpc,
        vpcSubnets,
        instanceType,
        machineImage: this.machineImage(),
        securityGroup,
        // IMDSv2 on the instance itself: requireImdsv2 would add a launch template with a fixed name.
        httpTokens: ec2.HttpTokens.REQUIRED,
        instanceName: count === 1 ? name : `${name}-${i + 1}`,
        detailedMonitoring,
        disableApiTermination: terminationProtection,
        // The AMI's root mapping made explicit, so that the template (and cdk-nag) shows the encryption.
        blockDevices: encryptRoot ? [{
          deviceName: PV_ROOT_DEVICE_NAME,
          volume: ec2.BlockDeviceVolume.ebs(root.volumeSizeGiB, {
            encrypted: true,
            kmsKey: root.encryptionKey,
            volumeType: ec2.EbsDeviceVolumeType.GP2,
            deleteOnTermination: true,
          }),
        }] : undefined,
      });
      acknowledgeInstanceDefaults(instance.node.defaultChild as CfnResource, { detailedMonitoring, terminationProtection, encryptRoot });
      instances.push(instance);
    }
    return instances;
  }
}

/**
 * Whether a parameter name is a simple name (no path) or a path beginning with `/`, which the
 * parameter's ARN needs to know; CDK cannot tell from a token. A name that begins with a token is
 * taken to be a path, as the docs say to give it.
 */
function isSimpleParameterName(name: string): boolean {
  const start = Tokenization.reverseString(name).firstValue;
  return typeof start === 'string' && !start.startsWith('/');
}

/** What the instances' root volume is: the AMI's snapshot. */
interface RootVolume {
  readonly volumeSizeGiB: number;
  readonly amiEncrypted: boolean;
  readonly encryptionKey?: kms.IKey;
}

/**
 * PV families that older EC2 guides did not list for EBS encryption (they listed C3 and M3), and for
 * which no launch report confirms an encrypted root volume.
 */
const UNCONFIRMED_ENCRYPTION_FAMILIES = ['c1', 'hs1', 'm1', 'm2', 't1'];

/** The cdk-nag findings an instance has when an option is left at its default, with why that default. */
function acknowledgeInstanceDefaults(instance: CfnResource, options: { detailedMonitoring: boolean; terminationProtection: boolean; encryptRoot: boolean }): void {
  if (!options.detailedMonitoring) {
    acknowledgeNagRule(instance, 'AwsSolutions-EC28',
      'Basic monitoring (5-minute EC2 metrics) is free and a unikernel runs no agent; set instances.detailedMonitoring for 1-minute metrics.');
  }
  if (!options.terminationProtection) {
    acknowledgeNagRule(instance, 'AwsSolutions-EC29',
      'Termination protection is off so that cdk destroy and instance replacements work; set instances.terminationProtection to turn it on.');
  }
  if (!options.encryptRoot) {
    acknowledgeNagRule(instance, 'AwsSolutions-EC26',
      'The root volume is encrypted when the AMI is (encryption, encryptionKey) or instances.encryptRootVolume is set; off by default ' +
      'because encrypted root volumes on the C1, HS1, M1, M2 and T1 PV families are not confirmed.');
  }
}

/** The volume size in whole GiB (or a token for it); the disk-image writer checks the upper bound. */
function volumeSizeInGiB(scope: Construct, size: Size): number {
  const gib = size.toGibibytes({ rounding: SizeRoundingBehavior.NONE });
  if (!Token.isUnresolved(gib) && (!Number.isInteger(gib) || gib < 1)) {
    throw validationError(scope, `volumeSize is ${gib} GiB: an EBS volume is a whole number of GiB, at least 1. Give e.g. Size.gibibytes(1).`);
  }
  return gib;
}

/** The largest kernel file a volume holds, as the disk-image writer lays it out; undefined for a token size. */
function maxKernelFileBytes(scope: Construct, volumeSizeGiB: number, layout: DiskLayout): number | undefined {
  if (Token.isUnresolved(volumeSizeGiB)) {
    return undefined;
  }
  return checkInput(
    scope,
    () => maxKernelBytes(volumeSizeGiB, layout),
    (reason) => `volumeSize ${volumeSizeGiB} GiB with layout '${layout}' cannot be used: ${reason}`,
  );
}

function amiRemovalKind(scope: Construct, policy: RemovalPolicy): AmiRemovalKind {
  switch (policy) {
    case RemovalPolicy.DESTROY:
      return AmiRemovalKind.DESTROY;
    case RemovalPolicy.RETAIN:
      return AmiRemovalKind.RETAIN;
    default:
      throw validationError(
        scope,
        `removalPolicy ${policy} is not supported for a unikernel AMI: an AMI has no snapshot-on-delete. ` +
        'Use RemovalPolicy.DESTROY (deregister the AMI and delete its snapshot) or RemovalPolicy.RETAIN (keep both).',
      );
  }
}
