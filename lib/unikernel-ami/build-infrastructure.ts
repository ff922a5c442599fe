import { ArnFormat, Aws, CfnResource, Duration, Lazy, Names, RemovalPolicy, Stack, Tokenization } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { handlerAssetDirectory } from './handler-asset';
import { acknowledgeNagRule, wildcardResourceFinding } from './nag-acknowledgements';
import {
  BUILD_OWNED_TAG_KEYS,
  BuildStrategyKind,
  HELPER_SSM_DOCUMENT,
  HELPER_VOLUMES,
  IMAGE_USER_TAG_PREFIX,
  MANAGED_TAG,
  OPERATION_TIMING,
  NAME_TAG,
  RETAINED_TAG,
  STACK_ID_TAG,
  STACK_TAG,
  STAGING_PREFIX,
} from './types';

/** Construct id of the per-stack singleton; a contract with deployed stacks. */
const INFRASTRUCTURE_ID = 'MirageUnikernelAmiBuildInfrastructure';

/** The time budget of one custom-resource operation (OPERATION_TIMING in types.ts) as the CDK takes it. */
export const ON_EVENT_TIMEOUT = Duration.seconds(OPERATION_TIMING.onEventSeconds);
export const IS_COMPLETE_TIMEOUT = Duration.seconds(OPERATION_TIMING.isCompleteSeconds);
export const WAITER_QUERY_INTERVAL = Duration.seconds(OPERATION_TIMING.queryIntervalSeconds);
export const WAITER_TOTAL_TIMEOUT = Duration.seconds(OPERATION_TIMING.waiterTotalSeconds);
export const SERVICE_TIMEOUT = Duration.seconds(OPERATION_TIMING.serviceTimeoutSeconds);

/**
 * The Node.js runtime of the handler: the latest that aws-cdk-lib 2.257 (the lowest version we
 * support) offers, and the one the handler is tested on.
 */
const HANDLER_RUNTIME = lambda.Runtime.NODEJS_24_X;

/** Where a condition reads a resource's existing tags: EC2, EBS direct and SSM name the key differently. */
type ResourceTagKey = 'ec2:ResourceTag' | 'aws:ResourceTag' | 'ssm:resourceTag';

/** What a helper-instance build of one unikernel runs in. */
export interface HelperNetwork {
  /** Subnet of the helper. */
  readonly subnetId: string;
  /** Subnets of other availability zones the helper may be launched in when `subnetId`'s zone lacks capacity. */
  readonly fallbackSubnetIds?: readonly string[];
  /** Security group of the helper. */
  readonly securityGroup: ec2.ISecurityGroup;
}

/** What one unikernel's build creates, which bounds what the handler may create. */
export interface BuildRequirements {
  /** Size of the volume and snapshot in GiB (may be a token). */
  readonly volumeSizeGiB: number;
  /** Key that encrypts the volume and snapshot; absent for none or the AWS managed key. */
  readonly encryptionKey?: kms.IKey;
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

/** The helper's shared resources. */
interface Helper extends HelperLaunchSettings {
  readonly role: iam.Role;
  /** The RunInstances statement naming the helper's image, subnets and security groups. */
  readonly networkStatement: iam.PolicyStatement;
}

/**
 * What every unikernel of a stack shares: one custom-resource provider and its role, and, once a
 * unikernel uses the helper-instance strategy, the staging bucket and the helper's role and profile.
 *
 * The handler role starts with no EC2 permissions; each `enable*` method adds what one kind of build
 * needs, so the role holds the union of what the stack's unikernels need and nothing more (a stack of
 * EBS-direct builds gets no instance, volume, SSM or VPC permissions).
 *
 * Every statement that lets the handler change something requires, besides the managed tag, this
 * stack's id in the stack-id tag (`mirage-unikernel-ami:stack-id`, which the handler writes from the
 * event's StackId): on the request when creating, on the resource when changing or deleting. One
 * stack's handler cannot touch another stack's helpers, volumes, snapshots or AMIs, nor those of an
 * earlier stack of the same name; and no handler can destroy or re-tag an AMI or snapshot marked
 * retained. What IAM cannot bind to a build is listed in the README's Security section.
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
  private helper?: Helper;
  private readonly helperSecurityGroups = new Map<ec2.IVpc, ec2.SecurityGroup>();
  private readonly helperNetworkArns = new Set<string>();
  private readonly helperInstanceTypes = new Set<string>();
  /** Sizes of the volumes a helper launch may create: the helper unikernels' sizes and AL2023's root. */
  private readonly helperVolumeSizes = new Set<string>([String(HELPER_VOLUMES.rootSizeGiB)]);
  /** Sizes of the snapshots StartSnapshot may create: the EBS-direct unikernels' sizes. */
  private readonly directVolumeSizes = new Set<string>();
  private imageStatementsAdded = false;
  private directBuildsEnabled = false;
  private readonly grantedKeys = new Set<string>();
  private readonly grantedKernels = new Set<string>();
  private kernelReads?: iam.PolicyStatement;
  private kernelVersionReads?: iam.PolicyStatement;
  private readonly handlerPolicy: iam.CfnPolicy;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    this.handlerRole = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Builds paravirtual unikernel AMIs (mirage-unikernel-ami custom resource)',
    });
    // Only the two log actions on the handlers' own log group: no AWSLambdaBasicExecutionRole,
    // which allows creating log groups and writing to any of them.
    const logGroup = new logs.LogGroup(this, 'HandlerLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    logGroup.grantWrite(this.handlerRole);
    this.handlerPolicy = (this.handlerRole.node.findChild('DefaultPolicy') as iam.Policy).node.defaultChild as iam.CfnPolicy;

    const code = lambda.Code.fromAsset(handlerAssetDirectory());
    const common = {
      code,
      runtime: HANDLER_RUNTIME,
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
      timeout: ON_EVENT_TIMEOUT,
      description: 'mirage-unikernel-ami: starts building, updating or deleting a unikernel AMI',
    });
    const isCompleteHandler = new lambda.Function(this, 'IsComplete', {
      ...common,
      handler: 'index.isComplete',
      timeout: IS_COMPLETE_TIMEOUT,
      description: 'mirage-unikernel-ami: advances a unikernel AMI build one step and says when it is done',
    });
    for (const fn of [onEventHandler, isCompleteHandler]) {
      acknowledgeNewerRuntime(fn);
    }

    const providerLogs = new logs.LogGroup(this, 'ProviderLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // The framework's functions get roles of ours, which may only write to their log group and
    // invoke our handlers (the provider adds that), instead of AWSLambdaBasicExecutionRole.
    const frameworkOnEventRole = this.frameworkRole('ProviderOnEventRole', providerLogs);
    const frameworkCompleteAndTimeoutRole = this.frameworkRole('ProviderWaiterRole', providerLogs);
    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler,
      isCompleteHandler,
      queryInterval: WAITER_QUERY_INTERVAL,
      totalTimeout: WAITER_TOTAL_TIMEOUT,
      logGroup: providerLogs,
      frameworkOnEventRole,
      frameworkCompleteAndTimeoutRole,
      // Every state of the waiter, without execution data: its input is the CloudFormation event,
      // whose presigned ResponseURL must never reach a log.
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: {
        destination: new logs.LogGroup(this, 'WaiterLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY }),
        level: sfn.LogLevel.ALL,
        includeExecutionData: false,
      },
    });
    this.acknowledgeProviderFindings(onEventHandler, isCompleteHandler);

  }

  /**
   * The stack's own minimal VPC, for helpers and instances given no VPC: public subnets in two AZs
   * that give instances public IPs, and no NAT gateway. Helpers reach SSM and S3 through their public
   * IP; nothing can reach them, since their security group has no inbound rule.
   */
  public get defaultVpc(): ec2.IVpc {
    if (this.vpc === undefined) {
      this.vpc = new ec2.Vpc(this, 'Vpc', {
        maxAzs: 2,
        natGateways: 0,
        restrictDefaultSecurityGroup: false,
        subnetConfiguration: [{ name: 'Public', subnetType: ec2.SubnetType.PUBLIC, mapPublicIpOnLaunch: true }],
      });
      acknowledgeNagRule(this.vpc.node.defaultChild as CfnResource, 'AwsSolutions-VPC7',
        'This VPC exists only when no vpc is given: it holds the transient build helper (no inbound rule) and the unikernel instances. ' +
        'Flow logs are a cost the user chooses: pass a VPC with flow logs as instances.vpc and BuildStrategy.helperInstance({ vpc }).');
    }
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

  /** Lets the handler read a kernel object (one statement for all kernels, to keep the role's policy small). */
  public grantKernelRead(bucket: s3.IBucket, objectKey: string, objectVersion?: string): void {
    const versioned = objectVersion !== undefined;
    const arn = bucket.arnForObjects(objectKey);
    const id = `${Names.nodeUniqueId(bucket.node)}/${objectKey}/${versioned}`;
    if (this.grantedKernels.has(id)) {
      return;
    }
    this.grantedKernels.add(id);
    const existing = versioned ? this.kernelVersionReads : this.kernelReads;
    if (existing !== undefined) {
      existing.addResources(arn);
    } else {
      const statement = this.addStatement(versioned ? ['s3:GetObject', 's3:GetObjectVersion'] : ['s3:GetObject'], [arn]);
      if (versioned) {
        this.kernelVersionReads = statement;
      } else {
        this.kernelReads = statement;
      }
    }
    bucket.encryptionKey?.grantDecrypt(this.handlerRole);
  }

  /** Lets the handler write snapshots with the EBS direct APIs (and register, tag and delete images). */
  public enableDirectBuilds(requirements: BuildRequirements): void {
    this.enableImageRegistration();
    this.directVolumeSizes.add(Tokenization.stringifyNumber(requirements.volumeSizeGiB));
    if (requirements.encryptionKey !== undefined) {
      this.grantKey(requirements.encryptionKey, BuildStrategyKind.EBS_DIRECT);
    }
    if (this.directBuildsEnabled) {
      return;
    }
    this.directBuildsEnabled = true;
    const snapshots = this.arn('snapshot/*', '');
    const directSizes = Lazy.list({ produce: () => [...this.directVolumeSizes] });
    // StartSnapshot carries the new snapshot's size and tags (Service Authorization Reference, ebs).
    this.addStatement(['ebs:StartSnapshot'], [snapshots], {
      StringEquals: this.requestTagsOurs(),
      NumericEquals: { 'ebs:VolumeSize': directSizes },
    });
    // StartSnapshot with Tags is also authorized as ec2:CreateTags on the new snapshot (the SAR's
    // operations table; AWS's example grants it unconditioned). Whether that check carries
    // ec2:CreateAction = StartSnapshot, or the new snapshot's ec2:VolumeSize, no AWS document says,
    // so both keys are "IfExists": a plain CreateTags, which carries no ec2:CreateAction, passes this
    // statement too. IAM cannot tell "the snapshot this StartSnapshot creates" from an existing one,
    // so what remains is bounded instead: only our tags, only on a snapshot that carries none of the
    // build's tags (of any stack or release), and, where IAM sets ec2:VolumeSize, only of an
    // EBS-direct unikernel's size. That residual is listed in the README's Security section.
    this.addStatement(['ec2:CreateTags'], [snapshots], {
      StringEquals: this.requestTagsOurs(),
      StringEqualsIfExists: { 'ec2:CreateAction': 'StartSnapshot' },
      NumericEqualsIfExists: { 'ec2:VolumeSize': directSizes },
      Null: Object.fromEntries(BUILD_OWNED_TAG_KEYS.filter((key) => key !== NAME_TAG).map((key) => [`ec2:ResourceTag/${key}`, 'true'])),
    });
    // PutSnapshotBlock and CompleteSnapshot carry only the snapshot's tags (SAR, ebs).
    this.addStatement(['ebs:PutSnapshotBlock', 'ebs:CompleteSnapshot'], [snapshots], { StringEquals: this.resourceTagsOurs('aws:ResourceTag') });
    // Reading back a snapshot the handler finds completed without having completed it (a repeated
    // attempt), before an AMI is registered from it: our snapshots only.
    this.addStatement(['ebs:ListSnapshotBlocks', 'ebs:GetSnapshotBlock'], [snapshots], { StringEquals: this.resourceTagsOurs('aws:ResourceTag') });
  }

  /**
   * Lets the handler build with a helper instance of `instanceType` in `network`, creating on first
   * use the staging bucket, the helper's role, instance profile and image, and returns what the
   * handler needs to launch it.
   */
  public enableHelperBuilds(network: HelperNetwork, instanceType: string, requirements: BuildRequirements): HelperLaunchSettings {
    this.enableImageRegistration();
    this.helperVolumeSizes.add(Tokenization.stringifyNumber(requirements.volumeSizeGiB));
    this.helperInstanceTypes.add(instanceType);
    if (requirements.encryptionKey !== undefined) {
      this.grantKey(requirements.encryptionKey, BuildStrategyKind.HELPER_INSTANCE);
    }
    this.helper ??= this.createHelper();
    this.allowHelperNetwork(
      this.arn(`subnet/${network.subnetId}`),
      ...(network.fallbackSubnetIds ?? []).map((subnetId) => this.arn(`subnet/${subnetId}`)),
      this.arn(`security-group/${network.securityGroup.securityGroupId}`),
    );
    return this.helper;
  }

  private createHelper(): Helper {
    const stagingBucket = new s3.Bucket(this, 'StagingBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      // A build reads its staged image within the hour; anything older is a leftover, and so is the
      // multipart upload of a staged image whose handler died before completing or aborting it.
      lifecycleRules: [{ prefix: STAGING_PREFIX, expiration: Duration.days(1), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });
    acknowledgeNagRule(stagingBucket.node.defaultChild as CfnResource, 'AwsSolutions-S1',
      'Transient staging: each object lives for the minutes of one build (lifecycle expiry after a day), is written, read and deleted only by ' +
      'the handler role (the helper downloads with URLs the handler presigns), over TLS only. Access logs would need a second bucket; use CloudTrail S3 data events to audit.');
    const stagedObjects = stagingBucket.arnForObjects(`${STAGING_PREFIX}*`);

    // Exactly what the SSM agent (3.x, amazon-ssm-agent 3.3.1142.0 read) needs to take one Run
    // Command, and nothing for Session Manager: not the managed AmazonSSMManagedInstanceCore, which
    // also allows ssm:GetParameter(s) on every parameter and interactive sessions (a root shell).
    // Whatever IAM can bind to the calling instance is bound: ec2:SourceInstanceARN (set for
    // instance-profile credentials; ssm:SourceInstanceARN is not) must be an instance of this
    // account and region. No resource tag: the Service Authorization Reference lists none for
    // UpdateInstanceInformation, and a condition on a key IAM does not set would deny the heartbeat.
    // Inline in the role, so the helper never starts before its permissions exist.
    const instanceCredentials = { StringLike: { 'ec2:SourceInstanceARN': this.arn('instance/*') } };
    const helperPolicy = new iam.PolicyDocument({
      statements: [
        // The heartbeat that makes the helper a managed node SendCommand can target
        // (agent/health/healthcheck.go, UpdateInstanceInformation).
        new iam.PolicyStatement({
          actions: ['ssm:UpdateInstanceInformation'],
          resources: [this.arn('instance/*')],
          conditions: instanceCredentials,
        }),
        // The Message Gateway control channel, over which the agent receives commands and replies
        // once it is up (agent/session/controlchannel/controlchannel.go: CreateControlChannel, then
        // OpenControlChannel's websocket; agent/messageservice/interactor/mgsinteractor). No data
        // channels: CreateDataChannel/OpenDataChannel serve only Session Manager sessions
        // (agent/session/datachannel, used by agent/session/plugins/sessionplugin).
        new iam.PolicyStatement({ actions: ['ssmmessages:CreateControlChannel'], resources: ['*'], conditions: instanceCredentials }),
        new iam.PolicyStatement({ actions: ['ssmmessages:OpenControlChannel'], resources: ['*'] }),
        // The Message Delivery Service, which the agent polls from its start until the control
        // channel is up, and again whenever CreateControlChannel is denied
        // (agent/messageservice/interactor/mdsinteractor, agent/ssmconnectionchannel): its calls in
        // agent/runcommand/mds/service.go. Without it a command sent in that window, or through a
        // VPC with an ec2messages endpoint but no ssmmessages one, would never arrive. No
        // GetEndpoint: the agent never calls it.
        new iam.PolicyStatement({ actions: ['ec2messages:GetMessages', 'ec2messages:SendReply'], resources: ['*'], conditions: instanceCredentials }),
        new iam.PolicyStatement({ actions: ['ec2messages:AcknowledgeMessage', 'ec2messages:DeleteMessage', 'ec2messages:FailMessage'], resources: ['*'] }),
        // No S3 permission: the script downloads its build's staged objects with URLs the handler
        // presigns for each command (handler/presign.ts).
      ],
    });
    const role = new iam.Role(this, 'HelperRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'mirage-unikernel-ami build helper: the SSM agent\'s Run Command channel, nothing else',
      inlinePolicies: { HelperPermissions: helperPolicy },
    });
    const roleResource = role.node.defaultChild as iam.CfnRole;
    acknowledgeNagRule(roleResource, 'AwsSolutions-IAM5',
      'ec2messages and ssmmessages actions take no resource (Service Authorization Reference), so they are granted on *, those that carry ' +
      'ec2:SourceInstanceARN only to instances of this account and region; ssm:UpdateInstanceInformation, the heartbeat of the helper\'s own ' +
      'SSM agent, only on instances of this account and region, from one of them.',
      [wildcardResourceFinding(roleResource, '*'), wildcardResourceFinding(roleResource, this.arn('instance/*'))]);
    const instanceProfile = new iam.CfnInstanceProfile(this, 'HelperInstanceProfile', { roles: [role.roleName] });
    // The helper only copies bytes onto a volume; any x86_64 Linux does. AL2023 runs the SSM agent.
    const imageId = ec2.MachineImage.latestAmazonLinux2023().getImage(this).imageId;

    // The helper build's statements in a managed policy of their own, attached to the handler role:
    // with them, the role's inline policy would exceed the size CDK splits at, and IAM's limit on a
    // role's inline policies. A child of the role, so what depends on the role waits for it too.
    const policy = new iam.ManagedPolicy(this.handlerRole, 'HelperBuildPolicy', {
      description: 'mirage-unikernel-ami: what the handler needs for helper-instance builds',
      roles: [this.handlerRole],
    });
    const allow = (actions: string[], resources: string[], conditions?: { [operator: string]: unknown }) => {
      const statement = new iam.PolicyStatement({ actions, resources, conditions });
      policy.addStatements(statement);
      return statement;
    };
    const acknowledge = (arn: string, reason: string) => acknowledgeNagRule(policy.node.defaultChild as CfnResource, 'AwsSolutions-IAM5',
      `Handler, helper builds: ${reason}.`, [wildcardResourceFinding(policy.node.defaultChild as CfnResource, arn)]);

    // A staged image above one part is a multipart upload (PutObject covers its parts); a failed
    // staging aborts its upload, so that no parts are left billed until the lifecycle rule runs.
    allow(['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'], [stagedObjects]);
    // Reading under builds/: the build's progress object (handler/progress.ts), which every round
    // reads back, and the staged image, which the helper downloads with URLs the handler presigns
    // (a presigned GET is authorized as its signer). A read of a progress object not written yet
    // (or removed by an earlier cleanup pass) must answer NoSuchKey, which S3 gives only to a caller
    // allowed s3:ListBucket, else AccessDenied (GetObject API reference, "Permissions"); what context
    // S3 checks that with is undocumented, so no prefix condition. The bucket holds nothing but this
    // stack's builds/.
    allow(['s3:GetObject'], [stagedObjects]);
    allow(['s3:ListBucket'], [stagingBucket.bucketArn]);
    allow(['iam:PassRole'], [role.roleArn], { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } });

    const instances = this.arn('instance/*');
    const volumes = this.arn('volume/*');
    const networkInterfaces = this.arn('network-interface/*');
    const snapshots = this.arn('snapshot/*', '');
    // Only a helper: our tags, IMDSv2 only (the role cannot launch one that allows IMDSv1), a
    // configured helper type, and the helper's instance profile.
    allow(['ec2:RunInstances'], [instances], {
      StringEquals: {
        ...this.requestTagsOurs(),
        'ec2:MetadataHttpTokens': 'required',
        'ec2:InstanceType': Lazy.list({ produce: () => [...this.helperInstanceTypes] }),
        'ec2:InstanceProfile': instanceProfile.attrArn,
      },
    });
    // The helper's volumes, created by RunInstances from its block device mappings (the handler
    // names both, types.ts HELPER_VOLUMES): gp3, and the size of a helper unikernel's data volume
    // or AL2023's root.
    allow(['ec2:RunInstances'], [volumes], {
      StringEquals: { ...this.requestTagsOurs(), 'ec2:VolumeType': HELPER_VOLUMES.volumeType },
      NumericEquals: { 'ec2:VolumeSize': Lazy.list({ produce: () => [...this.helperVolumeSizes] }) },
    });
    // The helper's network interface, created by RunInstances.
    allow(['ec2:RunInstances'], [networkInterfaces], { StringEquals: this.requestTagsOurs() });
    // ...from the helper's own image, in a helper subnet and security group (no key pair is allowed).
    const networkStatement = allow(['ec2:RunInstances'], [this.arn(`image/${imageId}`, '')]);
    allow(['ec2:CreateSnapshot'], [snapshots], { StringEquals: this.requestTagsOurs() });
    allow(['ec2:CreateTags'], [instances, volumes, networkInterfaces, snapshots], {
      StringEquals: { ...this.requestTagsOurs(), 'ec2:CreateAction': ['RunInstances', 'CreateSnapshot'] },
    });
    this.allowTagMigration([instances, volumes], (statement) => policy.addStatements(statement));
    this.denyTagChangesOfOtherStacks([instances, volumes], (statement) => policy.addStatements(statement));
    // Our helper and its volumes only: snapshotting the written volume, terminating the helper, and
    // deleting a volume that builds of earlier versions of the handler made outside a launch.
    allow(['ec2:CreateSnapshot', 'ec2:DeleteVolume', 'ec2:TerminateInstances'], [instances, volumes], {
      StringEquals: this.resourceTagsOurs('ec2:ResourceTag'),
    });
    // An AWS-owned document's ARN has no account; '*' matches that, and no account can own a document
    // named AWS-* (the prefix is reserved for AWS).
    const document = this.arn(`document/${HELPER_SSM_DOCUMENT}`, '*', 'ssm');
    allow(['ssm:SendCommand'], [document]);
    allow(['ssm:SendCommand'], [instances], { StringEquals: this.resourceTagsOurs('ssm:resourceTag') });
    allow(['ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'], ['*']);

    acknowledge('*', 'the SSM instance-information and command-invocation reads support no resource-level permissions ' +
      '(Service Authorization Reference); they only read');
    acknowledge(stagedObjects, 'the handler stages each build\'s image and progress under builds/<build id>/ and reads them back (presigning the helper\'s downloads), ids made at deploy time');
    acknowledge(instances, 'an instance id is unknown before RunInstances: launching requires our stack and managed tags on the request, ' +
      'IMDSv2, a helper type and the helper profile; TerminateInstances and SendCommand require those tags on the instance');
    acknowledge(volumes, 'a volume id is unknown before RunInstances creates it: launching requires our stack and managed tags on the request, ' +
      'gp3 and the sizes of the helper unikernels and AL2023\'s root; snapshotting and deleting require those tags on the volume');
    acknowledge(networkInterfaces, 'the helper\'s network interface is created by RunInstances with our stack and managed tags required on the request');
    acknowledge(document, 'the one document AWS-RunShellScript; AWS-owned documents have no account in their ARN, which * matches');
    acknowledge(snapshots, 'a snapshot id is unknown before CreateSnapshot, which requires our stack and managed tags on the request');

    return { role, stagingBucket, instanceProfileArn: instanceProfile.attrArn, imageId, networkStatement };
  }

  /** Adds a helper's subnet and security group to the resources RunInstances may use. */
  private allowHelperNetwork(...arns: string[]): void {
    for (const arn of arns) {
      if (!this.helperNetworkArns.has(arn)) {
        this.helperNetworkArns.add(arn);
        this.helper!.networkStatement.addResources(arn);
      }
    }
  }

  /**
   * What both strategies need: register the AMI, tag it, describe it and, on delete, remove it; and
   * the read-only calls that cleanup makes for any earlier build of the stack, so that a stack
   * switched from helper to direct builds can still see what its old helper builds left.
   */
  private enableImageRegistration(): void {
    if (this.imageStatementsAdded) {
      return;
    }
    this.imageStatementsAdded = true;
    const images = this.arn('image/*', '');
    const snapshots = this.arn('snapshot/*', '');
    // The new AMI must carry our tags, and only our own snapshots can back it.
    this.addStatement(['ec2:RegisterImage'], [images], { StringEquals: this.requestTagsOurs() });
    // Registering from, deregistering and deleting our AMIs and snapshots only.
    this.addStatement(['ec2:DeleteSnapshot', 'ec2:DeregisterImage', 'ec2:RegisterImage'], [images, snapshots], {
      StringEquals: this.resourceTagsOurs('ec2:ResourceTag'),
    });
    this.addStatement(['ec2:CreateTags'], [images], { StringEquals: { ...this.requestTagsOurs(), 'ec2:CreateAction': 'RegisterImage' } });
    // Re-tagging our AMI and snapshot (tag-only updates) may not hand them to another stack.
    this.addStatement(['ec2:CreateTags'], [images, snapshots], {
      StringEquals: this.resourceTagsOurs('ec2:ResourceTag'),
      StringEqualsIfExists: this.requestTagsOurs(),
    });
    // Removing a user tag, never one the build sets itself (types.ts: managed, stack, build id, Name,
    // resource, properties hash, retained); a DeleteTags without keys (all tags) is refused.
    this.addStatement(['ec2:DeleteTags'], [images, snapshots], {
      'StringEquals': this.resourceTagsOurs('ec2:ResourceTag'),
      'ForAllValues:StringNotEquals': { 'aws:TagKeys': [...BUILD_OWNED_TAG_KEYS] },
      'ForAllValues:StringNotLike': { 'aws:TagKeys': [`${IMAGE_USER_TAG_PREFIX}*`] },
      'Null': { 'aws:TagKeys': 'false' },
    });
    this.allowImageDistribution(images, snapshots);
    this.allowTagMigration([images, snapshots]);
    // Whatever any Allow says: an AMI or snapshot marked retained outlives its resource, so no
    // handler, of this stack or of a later one, may destroy it or change its tags; and nothing
    // tagged for another stack (incarnation) may be re-tagged.
    // That includes who may launch it or read its disk, its deprecation and its protection: the AMI
    // is the user's now, and what they shared or protected by hand stays as they set it.
    this.denyOnRetained([images, snapshots], [
      'ec2:DeregisterImage', 'ec2:DeleteSnapshot', 'ec2:CreateTags', 'ec2:DeleteTags',
      'ec2:ModifyImageAttribute', 'ec2:ModifySnapshotAttribute', 'ec2:EnableImageDeprecation', 'ec2:DisableImageDeprecation',
      'ec2:EnableImageDeregistrationProtection', 'ec2:DisableImageDeregistrationProtection',
    ]);
    this.denyTagChangesOfOtherStacks([images, snapshots]);
    this.addStatement(['ec2:DescribeImages', 'ec2:DescribeSnapshots', 'ec2:DescribeInstances', 'ec2:DescribeVolumes'], ['*']);
    this.acknowledgeHandlerWildcard('*', 'DescribeImages, DescribeSnapshots, DescribeInstances and DescribeVolumes support no resource-level ' +
      'permissions (Service Authorization Reference); they only read');
    this.acknowledgeHandlerWildcard(images, 'an AMI id is unknown before RegisterImage: registering requires our stack and managed tags on the request; ' +
      'tagging, untagging (never the build\'s own tags) and deregistering require them on the AMI');
    this.acknowledgeHandlerWildcard(snapshots, 'a snapshot id is unknown before it is created: creating requires our stack and managed tags on the request; ' +
      'writing blocks, registering, tagging and deleting require them on the snapshot');
    this.allowEncryptionDefaultCheck();
  }

  /**
   * What the AMI offers beyond its disk (handler/distribution.ts), on our AMIs and snapshots only:
   * description and launch permissions, deprecation, deregistration protection (turning it off too:
   * a Delete or a failed build's cleanup must, before it can deregister), and create-volume
   * permission on the snapshot; the reads come first, so that only differences are changed. In a
   * managed policy of its own: with them, the role's inline policy outgrows the size CDK splits at.
   * A child of the role, so that what depends on the role (the custom resource) waits for it too.
   * The retained-AMI Deny (denyOnRetained) covers the changing calls.
   */
  private allowImageDistribution(images: string, snapshots: string): void {
    const policy = new iam.ManagedPolicy(this.handlerRole, 'ImageDistributionPolicy', {
      description: 'mirage-unikernel-ami: what the handler needs to name, share, deprecate and protect the AMIs it builds',
      roles: [this.handlerRole],
    });
    policy.addStatements(
      new iam.PolicyStatement({
        actions: [
          'ec2:DescribeImageAttribute', 'ec2:ModifyImageAttribute', 'ec2:EnableImageDeprecation', 'ec2:DisableImageDeprecation',
          'ec2:EnableImageDeregistrationProtection', 'ec2:DisableImageDeregistrationProtection',
        ],
        resources: [images],
        conditions: { StringEquals: this.resourceTagsOurs('ec2:ResourceTag') },
      }),
      new iam.PolicyStatement({
        actions: ['ec2:DescribeSnapshotAttribute', 'ec2:ModifySnapshotAttribute'],
        resources: [snapshots],
        conditions: { StringEquals: this.resourceTagsOurs('ec2:ResourceTag') },
      }),
      // Whether the account blocks public AMIs: an account-and-region setting with no resource type
      // (Service Authorization Reference), so `*`; it only reads.
      new iam.PolicyStatement({ actions: ['ec2:GetImageBlockPublicAccessState'], resources: ['*'] }),
    );
    const cfnPolicy = policy.node.defaultChild as CfnResource;
    const acknowledge = (arn: string, reason: string) => acknowledgeNagRule(cfnPolicy, 'AwsSolutions-IAM5', `Handler, image distribution: ${reason}.`, [wildcardResourceFinding(cfnPolicy, arn)]);
    acknowledge('*', 'GetImageBlockPublicAccessState reads an account setting and supports no resource-level permissions (Service Authorization Reference)');
    acknowledge(images, 'the AMI id is unknown at synth: every call requires our managed tag and this stack\'s id on the AMI');
    acknowledge(snapshots, 'the snapshot id is unknown at synth: reading and changing its create-volume permission require our managed tag and this stack\'s id on the snapshot');
  }

  /**
   * The handler's check of the account's EBS encryption by default (handler/encryption-default.ts):
   * the two EC2 reads accept only `*` (Service Authorization Reference); kms:DescribeKey resolves the
   * default key, which is unknown at synth, so it names any key of this account and region (an alias
   * is authorized on the key it points to), and only describes it.
   */
  private allowEncryptionDefaultCheck(): void {
    this.addStatement(['ec2:GetEbsEncryptionByDefault', 'ec2:GetEbsDefaultKmsKeyId'], ['*']);
    const keys = Stack.of(this).formatArn({ service: 'kms', resource: 'key', resourceName: '*' });
    this.addStatement(['kms:DescribeKey'], [keys]);
    this.acknowledgeHandlerWildcard(keys, 'the account\'s default EBS key is unknown at synth; the handler only describes it, to fail early on a key it may not use');
  }

  /**
   * Lets the handler create encrypted volumes and snapshots with `key`. For the helper build, EC2 uses
   * the key on the handler's behalf, so every call must come through EC2 of this region (kms:ViaService)
   * and grants only for AWS resources. For EBS direct writes, AWS documents the actions but not whether
   * they arrive through a kms:ViaService endpoint, so those grants are not narrowed by one.
   */
  private grantKey(key: kms.IKey, strategy: BuildStrategyKind): void {
    const id = `${Names.nodeUniqueId(key.node)}/${strategy}`;
    if (this.grantedKeys.has(id)) {
      return;
    }
    this.grantedKeys.add(id);
    const grantsForAwsResources = { Bool: { 'kms:GrantIsForAWSResource': 'true' } };
    if (strategy === BuildStrategyKind.HELPER_INSTANCE) {
      const viaEc2 = { StringEquals: { 'kms:ViaService': `ec2.${Stack.of(this).region}.${Stack.of(this).urlSuffix}` } };
      // The actions EBS encryption needs of the caller (EBS user guide, "Requirements for Amazon EBS encryption").
      this.addStatement(['kms:CreateGrant'], [key.keyArn], { ...grantsForAwsResources, ...viaEc2 });
      this.addStatement(['kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'], [key.keyArn], viaEc2);
    } else {
      // The actions of AWS's EBS direct example policy for encrypted snapshots (EBS user guide,
      // "Control access to EBS direct APIs using IAM").
      this.addStatement(['kms:CreateGrant'], [key.keyArn], grantsForAwsResources);
      this.addStatement([
        'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo',
      ], [key.keyArn]);
    }
  }

  /** The `aws:RequestTag` conditions that make a created resource this stack's (this incarnation's: its id). */
  private requestTagsOurs(): { [key: string]: string } {
    return { [`aws:RequestTag/${MANAGED_TAG}`]: 'true', [`aws:RequestTag/${STACK_TAG}`]: Aws.STACK_NAME, [`aws:RequestTag/${STACK_ID_TAG}`]: Aws.STACK_ID };
  }

  /** The resource-tag conditions that make an existing resource this stack's: the managed tag and this stack's id. */
  private resourceTagsOurs(key: ResourceTagKey): { [key: string]: string } {
    return { [`${key}/${MANAGED_TAG}`]: 'true', [`${key}/${STACK_ID_TAG}`]: Aws.STACK_ID };
  }

  /**
   * Releases before the stack-id tag scoped by the stack's name. On its next Update or Delete, the
   * handler adds this stack's id to what its own build (found by build id) carries: allowed only
   * for a resource that carries the managed tag and this stack's name, no stack id yet and no
   * retained mark, and only that one tag. IAM cannot tell this stack from an earlier, deleted stack
   * of the same name: a resource such a stack's old release left (unretained) can be migrated too,
   * the residual the README lists.
   */
  private allowTagMigration(resources: string[], add: (statement: iam.PolicyStatement) => void = (st) => this.handlerRole.addToPrincipalPolicy(st)): void {
    add(new iam.PolicyStatement({
      actions: ['ec2:CreateTags'],
      resources,
      conditions: {
        'StringEquals': {
          [`ec2:ResourceTag/${MANAGED_TAG}`]: 'true',
          [`ec2:ResourceTag/${STACK_TAG}`]: Aws.STACK_NAME,
          [`aws:RequestTag/${STACK_ID_TAG}`]: Aws.STACK_ID,
        },
        'ForAllValues:StringEquals': { 'aws:TagKeys': [STACK_ID_TAG] },
        'Null': { 'aws:TagKeys': 'false', [`ec2:ResourceTag/${STACK_ID_TAG}`]: 'true', [`ec2:ResourceTag/${RETAINED_TAG}`]: 'true' },
      },
    }));
  }

  /** Denies `actions` on resources that carry the retained mark. */
  private denyOnRetained(resources: string[], actions: string[]): void {
    this.handlerRole.addToPrincipalPolicy(new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions,
      resources,
      conditions: { Null: { [`ec2:ResourceTag/${RETAINED_TAG}`]: 'false' } },
    }));
  }

  /** Denies tag changes on resources whose stack-id tag names another stack. */
  private denyTagChangesOfOtherStacks(resources: string[], add: (statement: iam.PolicyStatement) => void = (st) => this.handlerRole.addToPrincipalPolicy(st)): void {
    add(new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions: ['ec2:CreateTags', 'ec2:DeleteTags'],
      resources,
      conditions: {
        StringNotEquals: { [`ec2:ResourceTag/${STACK_ID_TAG}`]: Aws.STACK_ID },
        Null: { [`ec2:ResourceTag/${STACK_ID_TAG}`]: 'false' },
      },
    }));
  }

  private addStatement(actions: string[], resources: string[], conditions?: { [operator: string]: unknown }): iam.PolicyStatement {
    const statement = new iam.PolicyStatement({ actions, resources, conditions });
    this.handlerRole.addToPrincipalPolicy(statement);
    return statement;
  }

  /**
   * Acknowledges cdk-nag's IAM5 finding for a wildcard resource of the handler role, with the reason
   * it cannot be narrowed further. At once, not at synthesis: cdk-nag 2 reads it in an aspect.
   */
  private acknowledgeHandlerWildcard(arn: string, reason: string): void {
    acknowledgeNagRule(this.handlerPolicy, 'AwsSolutions-IAM5', `Handler: ${reason}.`, [wildcardResourceFinding(this.handlerPolicy, arn)]);
  }

  /** A role for the provider framework's functions: writing to the provider's log group, nothing else yet. */
  private frameworkRole(id: string, logGroup: logs.ILogGroup): iam.Role {
    const role = new iam.Role(this, id, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'mirage-unikernel-ami: the CDK provider framework\'s functions (logs, and invoking our handlers)',
    });
    logGroup.grantWrite(role);
    return role;
  }

  /**
   * The findings on what cdk.custom_resources.Provider makes, which its API cannot change: the
   * framework's functions choose their own runtime, lambda:InvokeFunction grants cover a function's
   * versions (`<arn>:*`), Step Functions log delivery takes no resource, and the Provider has no
   * tracing option for its waiter.
   */
  private acknowledgeProviderFindings(onEventHandler: lambda.IFunction, isCompleteHandler: lambda.IFunction): void {
    const handlers = [onEventHandler, isCompleteHandler];
    for (const child of this.provider.node.findAll()) {
      if (child instanceof lambda.CfnFunction) {
        acknowledgeNagRule(child, 'AwsSolutions-L1',
          'A function of the CDK provider framework: it chooses its runtime itself (lambda.determineLatestNodeRuntime), the Provider API has no runtime option.');
      } else if (child instanceof sfn.CfnStateMachine) {
        acknowledgeNagRule(child, 'AwsSolutions-SF2',
          `The CDK provider framework's waiter only calls isComplete every ${OPERATION_TIMING.queryIntervalSeconds} s; the Provider API offers no X-Ray tracing for it. All its events are logged.`);
      } else if (child instanceof iam.CfnPolicy && child.node.path.includes('waiter-state-machine')) {
        const invoked = ['framework-isComplete', 'framework-onTimeout'].map((id) => this.provider.node.findChild(id) as lambda.Function);
        acknowledgeNagRule(child, 'AwsSolutions-IAM5',
          'The provider framework\'s waiter invokes the framework\'s isComplete and onTimeout functions; lambda:InvokeFunction grants name a function and its versions (<arn>:*).',
          invoked.map((fn) => wildcardResourceFinding(child, `${fn.functionArn}:*`)));
        acknowledgeNagRule(child, 'AwsSolutions-IAM5',
          'Step Functions log delivery (logs:CreateLogDelivery and the other vended-log actions) supports no resource-level permissions.',
          [wildcardResourceFinding(child, '*')]);
      }
    }
    for (const role of [this.node.findChild('ProviderOnEventRole'), this.node.findChild('ProviderWaiterRole')]) {
      const policy = role.node.findChild('DefaultPolicy').node.defaultChild as iam.CfnPolicy;
      acknowledgeNagRule(policy, 'AwsSolutions-IAM5',
        'The provider framework invokes our onEvent and isComplete handlers; lambda:InvokeFunction grants name a function and its versions (<arn>:*).',
        handlers.map((fn) => wildcardResourceFinding(policy, `${fn.functionArn}:*`)));
    }
  }

  /** ARN of an EC2 (or SSM) resource in the stack's region; images and snapshots have no account. */
  private arn(resource: string, account?: string, service = 'ec2'): string {
    return Stack.of(this).formatArn({ service, account, resource, arnFormat: ArnFormat.NO_RESOURCE_NAME });
  }
}

/**
 * The handler runs on HANDLER_RUNTIME. A user's newer aws-cdk-lib may know a newer Node.js runtime,
 * which cdk-nag then expects; the handler is not tested on it, so that finding is acknowledged, and
 * only then.
 */
function acknowledgeNewerRuntime(fn: lambda.Function): void {
  const newer = lambda.Runtime.ALL
    .filter((runtime) => runtime.family === lambda.RuntimeFamily.NODEJS)
    .map((runtime) => runtime.name)
    .filter((name) => nodeMajor(name) > nodeMajor(HANDLER_RUNTIME.name));
  if (newer.length > 0) {
    acknowledgeNagRule(fn.node.defaultChild as CfnResource, 'AwsSolutions-L1',
      `The handler is built and tested for ${HANDLER_RUNTIME.name}; ${newer.join(', ')} of this aws-cdk-lib is not tested yet.`);
  }
}

function nodeMajor(runtimeName: string): number {
  return Number(/^nodejs(\d+)/.exec(runtimeName)?.[1] ?? 0);
}
