import { ArnFormat, Duration, Names, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { handlerAssetDirectory } from './handler-asset';
import { MANAGED_TAG } from './types';

/** Construct id of the per-stack singleton; a contract with deployed stacks. */
const INFRASTRUCTURE_ID = 'MirageUnikernelAmiBuildInfrastructure';

/** Prefix of everything the handler stages for a helper (`builds/<build id>/...`). */
export const STAGING_PREFIX = 'builds/';

/** Tag conditions that limit the handler to what it created itself (see design: IAM). */
const REQUEST_TAG_MANAGED = { StringEquals: { [`aws:RequestTag/${MANAGED_TAG}`]: 'true' } };
const RESOURCE_TAG_MANAGED = { StringEquals: { [`aws:ResourceTag/${MANAGED_TAG}`]: 'true' } };

/** What a helper-instance build of one unikernel runs in. */
export interface HelperNetwork {
  /** Subnet of the helper. */
  readonly subnetId: string;
  /** Security group of the helper. */
  readonly securityGroup: ec2.ISecurityGroup;
}

/** What the handler needs to launch helpers. */
export interface HelperLaunchSettings {
  /** ARN of the helper's instance profile. */
  readonly instanceProfileArn: string;
  /** AMI id of the helper's OS. */
  readonly imageId: string;
  /** Bucket where the handler stages disk images. */
  readonly stagingBucket: s3.IBucket;
}

/**
 * What every unikernel of a stack shares: one custom-resource provider and its role, and, once a
 * unikernel uses the helper-instance strategy, the staging bucket and the helper's role and profile.
 *
 * The handler role starts with no EC2 permissions; each `enable*`/`grant*` method adds what one kind
 * of build needs, so the role holds the union of what the stack's unikernels need and nothing more
 * (a stack of EBS-direct builds gets no instance, volume, SSM or VPC permissions).
 */
export class UnikernelAmiBuildInfrastructure extends Construct {
  /** The stack's singleton, created on first use. */
  public static of(scope: Construct): UnikernelAmiBuildInfrastructure {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(INFRASTRUCTURE_ID);
    return existing instanceof UnikernelAmiBuildInfrastructure ? existing : new UnikernelAmiBuildInfrastructure(stack, INFRASTRUCTURE_ID);
  }

  /** Role of the onEvent and isComplete handlers. */
  public readonly handlerRole: iam.Role;
  /** The provider whose service token every unikernel's custom resource uses. */
  public readonly provider: cr.Provider;

  private vpc?: ec2.Vpc;
  private helper?: HelperLaunchSettings & { readonly role: iam.IRole };
  private readonly helperSecurityGroups = new Map<ec2.IVpc, ec2.SecurityGroup>();
  private readonly helperNetworkArns = new Set<string>();
  private helperNetworkStatement?: iam.PolicyStatement;
  private imageStatementsAdded = false;
  private directBuildsEnabled = false;
  private readonly grantedKeys = new Set<kms.IKey>();
  private readonly grantedKernels = new Set<string>();

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    this.handlerRole = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Builds paravirtual unikernel AMIs (mirage-unikernel-ami custom resource)',
    });
    const logGroup = new logs.LogGroup(this, 'HandlerLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    logGroup.grantWrite(this.handlerRole);

    const code = lambda.Code.fromAsset(handlerAssetDirectory());
    const common = {
      code,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.X86_64,
      role: this.handlerRole,
      // A build streams the kernel into the snapshot or staged image: `npm run bench` measures a peak
      // of about 210 MiB whatever the kernel's size (up to 1 GiB tried); 512 MB leaves room for it.
      memorySize: 512,
      logGroup,
    };
    const onEventHandler = new lambda.Function(this, 'OnEvent', {
      ...common,
      handler: 'index.onEvent',
      timeout: Duration.minutes(15),
      description: 'mirage-unikernel-ami: starts building, updating or deleting a unikernel AMI',
    });
    const isCompleteHandler = new lambda.Function(this, 'IsComplete', {
      ...common,
      handler: 'index.isComplete',
      timeout: Duration.minutes(5),
      description: 'mirage-unikernel-ami: advances a unikernel AMI build one step and says when it is done',
    });
    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler,
      isCompleteHandler,
      queryInterval: Duration.seconds(15),
      // CloudFormation waits at most one hour for a custom resource.
      totalTimeout: Duration.minutes(55),
      logGroup: new logs.LogGroup(this, 'ProviderLogs', {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
  }

  /**
   * The stack's own minimal VPC, for helpers and instances given no VPC: public subnets in two AZs
   * that give instances public IPs, and no NAT gateway. Helpers reach SSM and S3 through their public
   * IP; nothing can reach them, since their security group has no inbound rule.
   */
  public get defaultVpc(): ec2.IVpc {
    this.vpc ??= new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      restrictDefaultSecurityGroup: false,
      subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC, mapPublicIpOnLaunch: true }],
    });
    return this.vpc;
  }

  /** The helpers' security group in `vpc`: no inbound rule (no SSH; SSM needs only outbound HTTPS). */
  public helperSecurityGroup(vpc: ec2.IVpc): ec2.ISecurityGroup {
    let group = this.helperSecurityGroups.get(vpc);
    if (group === undefined) {
      const id = vpc === this.vpc ? 'HelperSecurityGroup' : `HelperSecurityGroup${Names.nodeUniqueId(vpc.node)}`;
      group = new ec2.SecurityGroup(this, id, {
        vpc,
        allowAllOutbound: true,
        description: 'mirage-unikernel-ami build helper: no inbound access',
      });
      this.helperSecurityGroups.set(vpc, group);
    }
    return group;
  }

  /** Lets the handler read a kernel object. */
  public grantKernelRead(bucket: s3.IBucket, objectKey: string, objectVersion?: string): void {
    const actions = objectVersion === undefined ? ['s3:GetObject'] : ['s3:GetObject', 's3:GetObjectVersion'];
    const id = `${Names.nodeUniqueId(bucket.node)}/${objectKey}/${actions.length}`;
    if (this.grantedKernels.has(id)) {
      return;
    }
    this.grantedKernels.add(id);
    this.handlerRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: [bucket.arnForObjects(objectKey)] }));
    bucket.encryptionKey?.grantDecrypt(this.handlerRole);
  }

  /**
   * Lets the handler create encrypted volumes and snapshots with `key`. EC2 and EBS use the key on the
   * handler's behalf, hence CreateGrant only for AWS resources.
   */
  public grantKey(key: kms.IKey): void {
    if (this.grantedKeys.has(key)) {
      return;
    }
    this.grantedKeys.add(key);
    // Encrypt and GenerateDataKey are what the EBS direct APIs ask of the caller for a customer key.
    key.grant(
      this.handlerRole,
      'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo',
    );
    this.handlerRole.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['kms:CreateGrant'],
      resources: [key.keyArn],
      conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }));
  }

  /** Lets the handler write snapshots with the EBS direct APIs (and register, tag and delete images). */
  public enableDirectBuilds(): void {
    this.enableImageRegistration();
    if (this.directBuildsEnabled) {
      return;
    }
    this.directBuildsEnabled = true;
    const snapshots = this.arn('snapshot/*', '');
    this.addStatement(['ebs:StartSnapshot'], [snapshots], REQUEST_TAG_MANAGED);
    // StartSnapshot with Tags is also authorized as ec2:CreateTags on the new snapshot (the service
    // authorization reference lists it as StartSnapshot's dependent action). Only at creation, as for
    // EC2's own create actions: otherwise the role could mark any snapshot as ours and then delete it.
    this.addStatement(['ec2:CreateTags'], [snapshots], {
      StringEquals: { [`aws:RequestTag/${MANAGED_TAG}`]: 'true', 'ec2:CreateAction': 'StartSnapshot' },
    });
    this.addStatement(['ebs:PutSnapshotBlock', 'ebs:CompleteSnapshot'], [snapshots], RESOURCE_TAG_MANAGED);
  }

  /**
   * Lets the handler build with a helper instance in `network`, creating on first use the staging
   * bucket, the helper's role, instance profile and image, and returns what the handler needs to launch it.
   */
  public enableHelperBuilds(network: HelperNetwork): HelperLaunchSettings {
    this.enableImageRegistration();
    this.helper ??= this.createHelper();
    this.allowHelperNetwork(
      this.arn(`subnet/${network.subnetId}`),
      this.arn(`security-group/${network.securityGroup.securityGroupId}`),
    );
    return this.helper;
  }

  private createHelper(): HelperLaunchSettings & { readonly role: iam.IRole } {
    const stagingBucket = new s3.Bucket(this, 'StagingBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      // A build reads its staged image within the hour; anything older is a leftover.
      lifecycleRules: [{ prefix: STAGING_PREFIX, expiration: Duration.days(1) }],
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });
    const stagedObjects = stagingBucket.arnForObjects(`${STAGING_PREFIX}*`);

    const role = new iam.Role(this, 'HelperRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'mirage-unikernel-ami build helper: SSM agent and reading staged disk images',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [stagedObjects] }));
    const instanceProfile = new iam.CfnInstanceProfile(this, 'HelperInstanceProfile', { roles: [role.roleName] });
    // The helper only copies bytes onto a volume; any x86_64 Linux does. AL2023 runs the SSM agent.
    const imageId = ec2.MachineImage.latestAmazonLinux2023().getImage(this).imageId;

    this.addStatement(['s3:PutObject', 's3:GetObject', 's3:DeleteObject'], [stagedObjects]);
    this.addStatement(['iam:PassRole'], [role.roleArn], { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } });

    const instances = this.arn('instance/*');
    const volumes = this.arn('volume/*');
    const networkInterfaces = this.arn('network-interface/*');
    const snapshots = this.arn('snapshot/*', '');
    // IMDSv2 is enforced by IAM too: the role cannot launch a helper that allows IMDSv1.
    this.addStatement(['ec2:RunInstances'], [instances], {
      StringEquals: { [`aws:RequestTag/${MANAGED_TAG}`]: 'true', 'ec2:MetadataHttpTokens': 'required' },
    });
    this.addStatement(['ec2:RunInstances'], [volumes, networkInterfaces], REQUEST_TAG_MANAGED);
    this.helperNetworkStatement = this.addStatement(['ec2:RunInstances'], [this.arn(`image/${imageId}`, '')]);
    this.addStatement(['ec2:CreateVolume'], [volumes], REQUEST_TAG_MANAGED);
    this.addStatement(['ec2:CreateSnapshot'], [volumes], RESOURCE_TAG_MANAGED);
    this.addStatement(['ec2:CreateSnapshot'], [snapshots], REQUEST_TAG_MANAGED);
    this.addStatement(['ec2:CreateTags'], [instances, volumes, networkInterfaces, snapshots], {
      StringEquals: { 'ec2:CreateAction': ['RunInstances', 'CreateVolume', 'CreateSnapshot'] },
    });
    this.addStatement(['ec2:AttachVolume', 'ec2:TerminateInstances', 'ec2:DeleteVolume'], [instances, volumes], RESOURCE_TAG_MANAGED);
    this.addStatement(['ec2:DescribeInstances', 'ec2:DescribeVolumes', 'ec2:DescribeSubnets'], ['*']);
    this.addStatement(['ssm:SendCommand'], [this.arn('document/AWS-RunShellScript', '', 'ssm')]);
    this.addStatement(['ssm:SendCommand'], [instances], { StringEquals: { [`ssm:resourceTag/${MANAGED_TAG}`]: 'true' } });
    this.addStatement(['ssm:ListCommandInvocations', 'ssm:GetCommandInvocation', 'ssm:DescribeInstanceInformation'], ['*']);

    return { role, stagingBucket, instanceProfileArn: instanceProfile.attrArn, imageId };
  }

  /** Adds a helper's subnet and security group to the resources RunInstances may use. */
  private allowHelperNetwork(...arns: string[]): void {
    for (const arn of arns) {
      if (!this.helperNetworkArns.has(arn)) {
        this.helperNetworkArns.add(arn);
        this.helperNetworkStatement!.addResources(arn);
      }
    }
  }

  /** What both strategies need: register the AMI, tag it, describe it and, on delete, remove it. */
  private enableImageRegistration(): void {
    if (this.imageStatementsAdded) {
      return;
    }
    this.imageStatementsAdded = true;
    const images = this.arn('image/*', '');
    const snapshots = this.arn('snapshot/*', '');
    // The new AMI must carry our managed tag, and only our own snapshots can back it.
    this.addStatement(['ec2:RegisterImage'], [images], REQUEST_TAG_MANAGED);
    this.addStatement(['ec2:RegisterImage'], [snapshots], RESOURCE_TAG_MANAGED);
    this.addStatement(['ec2:CreateTags'], [images], { StringEquals: { 'ec2:CreateAction': 'RegisterImage' } });
    this.addStatement(['ec2:CreateTags', 'ec2:DeleteTags', 'ec2:DeregisterImage', 'ec2:DeleteSnapshot'], [images, snapshots], RESOURCE_TAG_MANAGED);
    this.addStatement(['ec2:DescribeImages', 'ec2:DescribeSnapshots'], ['*']);
  }

  private addStatement(actions: string[], resources: string[], conditions?: { [operator: string]: unknown }): iam.PolicyStatement {
    const statement = new iam.PolicyStatement({ actions, resources, conditions });
    this.handlerRole.addToPrincipalPolicy(statement);
    return statement;
  }

  /** ARN of an EC2 (or SSM) resource in the stack's region; images and snapshots have no account. */
  private arn(resource: string, account?: string, service = 'ec2'): string {
    return Stack.of(this).formatArn({ service, account, resource, arnFormat: ArnFormat.NO_RESOURCE_NAME });
  }
}
