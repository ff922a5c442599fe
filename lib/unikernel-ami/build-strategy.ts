import { Annotations, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BuildRequirements, UnikernelAmiBuildInfrastructure } from './build-infrastructure';
import { validationError } from './errors';
import { BuildStrategyKind, HelperInstanceBuildProperties } from './types';

/**
 * The helper runs Amazon Linux 2023, which is HVM-only and built for x86-64-v2 CPUs. t3.micro runs it
 * in every region that has PV-GRUB, is one of the few types an AWS Free plan account may launch, and
 * is Nitro (the volume shows up as an NVMe device, which the helper script finds by the volume id).
 * t1.micro (the 2013 recipe's helper) may still be chosen with `instanceType`, but AL2023 on it is
 * unverified and Free plan accounts cannot launch it.
 */
export const DEFAULT_HELPER_INSTANCE_TYPE = 't3.micro';

/** Options of the helper-instance build. */
export interface HelperInstanceBuildOptions {
  /**
   * Instance type of the helper. The helper runs Amazon Linux 2023 (HVM, x86_64) and only copies the
   * image onto a volume, so any small x86_64 type that runs Amazon Linux 2023 does. The handler may
   * launch only the helper types of the stack's unikernels.
   * @default t3.micro
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * VPC of the helper. The helper's subnet must reach SSM and S3: a public subnet that gives
   * instances public IPs, a NAT gateway, or VPC endpoints.
   * @default - a minimal VPC shared by the stack's unikernels (public subnets, no NAT gateway)
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets of `vpc` for the helper. The helper is launched in the first selected subnet; when EC2
   * has no capacity for its type there, in the next selected subnet of another availability zone.
   * @default - the public subnets of the shared VPC; the VPC's default selection of a given VPC
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
}

/** Custom-resource properties that say how to build. */
export interface BuildStrategyConfig {
  /** `helper-instance` or `ebs-direct`. */
  readonly strategy: BuildStrategyKind;
  /**
   * Name of the staging bucket.
   * @default - none (EBS direct)
   */
  readonly stagingBucketName?: string;
  /**
   * Helper launch settings.
   * @default - none (EBS direct)
   */
  readonly helper?: HelperInstanceBuildProperties;
}

/** How the disk image is written into the EBS snapshot behind the AMI. */
export abstract class BuildStrategy {
  /**
   * A transient helper instance (reached only through SSM) writes the image onto an EBS volume, which
   * is then snapshotted. Works wherever EC2 does.
   */
  public static helperInstance(options: HelperInstanceBuildOptions = {}): BuildStrategy {
    return new HelperInstanceStrategy(options);
  }

  /**
   * The EBS direct APIs write the image straight into a new snapshot: no instance, no volume, no VPC,
   * no staging bucket, and a narrower handler role.
   */
  public static ebsDirect(): BuildStrategy {
    return new EbsDirectStrategy();
  }

  /** Which strategy this is. */
  public abstract readonly kind: BuildStrategyKind;

  /**
   * Grants the shared handler what this strategy needs to build what `requirements` describe, and
   * returns the custom-resource settings.
   * @internal
   */
  public abstract _bind(infrastructure: UnikernelAmiBuildInfrastructure, requirements: BuildRequirements): BuildStrategyConfig;
}

class HelperInstanceStrategy extends BuildStrategy {
  public readonly kind = BuildStrategyKind.HELPER_INSTANCE;

  constructor(private readonly options: HelperInstanceBuildOptions) {
    super();
    const instanceType = options.instanceType?.toString();
    // The helper runs the x86_64 Amazon Linux 2023 image: an Arm (Graviton) type would only fail at RunInstances.
    if (instanceType !== undefined && !Token.isUnresolved(instanceType) && options.instanceType!.architecture === ec2.InstanceArchitecture.ARM_64) {
      throw validationError(
        undefined,
        `BuildStrategy.helperInstance({ instanceType: '${instanceType}' }) is an Arm (Graviton) type, but the helper runs the x86_64 ` +
        `Amazon Linux 2023 image. Choose an x86_64 type, for example the default ${DEFAULT_HELPER_INSTANCE_TYPE} or t3.small.`,
      );
    }
  }

  public _bind(infrastructure: UnikernelAmiBuildInfrastructure, requirements: BuildRequirements): BuildStrategyConfig {
    const vpc = this.options.vpc ?? infrastructure.defaultVpc;
    const selection = this.options.vpcSubnets ?? (this.options.vpc === undefined ? { subnetType: ec2.SubnetType.PUBLIC } : undefined);
    const [subnetId, ...fallbackSubnetIds] = oneSubnetPerZone(vpc.selectSubnets(selection).subnets);
    if (subnetId === undefined) {
      throw validationError(
        infrastructure,
        `The helper instance's subnet selection ${JSON.stringify(selection ?? 'default')} selects no subnet of the VPC. ` +
        'Give BuildStrategy.helperInstance({ vpcSubnets }) a selection that matches a subnet reaching SSM and S3.',
      );
    }
    const securityGroup = infrastructure.helperSecurityGroup(vpc);
    const instanceType = (this.options.instanceType ?? new ec2.InstanceType(DEFAULT_HELPER_INSTANCE_TYPE)).toString();
    warnOfOldHelperFamily(infrastructure, instanceType);
    const launch = infrastructure.enableHelperBuilds({ subnetId, fallbackSubnetIds, securityGroup }, instanceType, requirements);
    return {
      strategy: this.kind,
      stagingBucketName: launch.stagingBucket.bucketName,
      helper: {
        InstanceType: instanceType,
        SubnetId: subnetId,
        ...(fallbackSubnetIds.length > 0 ? { SubnetIds: [subnetId, ...fallbackSubnetIds] } : {}),
        SecurityGroupId: securityGroup.securityGroupId,
        InstanceProfileArn: launch.instanceProfileArn,
        ImageId: launch.imageId,
      },
    };
  }
}

/**
 * Previous-generation families that run PV AMIs and whose CPUs may predate x86-64-v2: AWS's records
 * conflict on whether they run HVM images such as the helper's Amazon Linux 2023 (shared/data
 * pv-grub.json, helperInstance), and AL2023 needs x86-64-v2. (C3, M3 and HS1 are Ivy Bridge or
 * later, hence x86-64-v2.)
 */
const UNVERIFIED_HELPER_FAMILIES = ['t1', 'm1', 'm2', 'c1'];

/** A synth warning, not an error, for a helper of such a family: it may still work, but no record says it does. */
function warnOfOldHelperFamily(scope: Construct, instanceType: string): void {
  const family = instanceType.split('.')[0];
  if (Token.isUnresolved(instanceType) || !UNVERIFIED_HELPER_FAMILIES.includes(family)) {
    return;
  }
  Annotations.of(scope).addWarningV2('mirage-unikernel-ami:helper-instance-type',
    `The helper instance type ${instanceType} is of the previous-generation ${family} family: AWS's records conflict on whether it runs HVM images ` +
    'such as the helper\'s Amazon Linux 2023, which also needs an x86-64-v2 CPU, so the helper may fail to boot. ' +
    `Give BuildStrategy.helperInstance a type known to run it, such as ${DEFAULT_HELPER_INSTANCE_TYPE} (the default). ` +
    'The helper only writes the disk: the AMI\'s own instances may still be of a PV family.');
}

/**
 * The ids of the first selected subnet of each availability zone, in selection order. In an
 * environment-agnostic stack a VPC's zones are tokens, one per zone, which its subnets share; a
 * subnet imported without its zone counts as a zone of its own.
 */
function oneSubnetPerZone(subnets: readonly ec2.ISubnet[]): string[] {
  const zones = new Set<string>();
  const ids: string[] = [];
  for (const subnet of subnets) {
    const zone = zoneOf(subnet) ?? subnet.subnetId;
    if (!zones.has(zone)) {
      zones.add(zone);
      ids.push(subnet.subnetId);
    }
  }
  return ids;
}

/** A subnet's availability zone; undefined for one imported without it (Subnet.fromSubnetId, whose getter throws). */
function zoneOf(subnet: ec2.ISubnet): string | undefined {
  try {
    return subnet.availabilityZone;
  } catch {
    return undefined;
  }
}

class EbsDirectStrategy extends BuildStrategy {
  public readonly kind = BuildStrategyKind.EBS_DIRECT;

  public _bind(infrastructure: UnikernelAmiBuildInfrastructure, requirements: BuildRequirements): BuildStrategyConfig {
    infrastructure.enableDirectBuilds(requirements);
    return { strategy: this.kind };
  }
}
