/**
 * What IAM authorizes for each AWS request the handler (or its helper instance) makes: the actions,
 * the resource ARNs and the request context, per the Service Authorization Reference and the EC2,
 * EBS, S3, SSM and KMS user guides. One request may need several authorizations: RunInstances
 * authorizes the instance, each volume it creates (the image's root and the block device mappings,
 * with their type and size), its network interface, the image, subnet and security groups,
 * iam:PassRole of the profile's role, ec2:CreateTags for each tag specification, and the KMS calls
 * EC2 makes on the caller's behalf for a volume encrypted with a customer managed key.
 *
 * Context keys are only those AWS documents for the action and resource type; the simulator refuses
 * any other (simulator.ts), so this mapping cannot quietly feed a key that IAM would not see.
 *
 * Where AWS does not document what a request carries, the mapping says so and models the strictest
 * reading: StartSnapshot's ec2:CreateTags is checked both with and without ec2:CreateAction, the
 * KMS calls EBS direct makes carry no kms:ViaService, and an S3 read answered NoSuchKey also needed
 * s3:ListBucket (without it S3 answers AccessDenied, GetObject API reference, "Permissions").
 */
import { RecordedRequest, RecordedTag } from '../fixtures/recorded-request';
import { IamCheck } from './simulator';

export interface AuthorizationEnvironment {
  readonly account: string;
  readonly region: string;
  readonly partition: string;
  readonly urlSuffix: string;
  /** The role of each instance profile the template creates (RunInstances passes it). */
  readonly instanceProfileRoles: { readonly [profileArn: string]: string };
  /**
   * The root volume each image a RunInstances may name maps (what DescribeImages shows of it): a
   * launch creates it unless a block device mapping of the same device replaces it.
   */
  readonly imageRootVolumes: { readonly [imageId: string]: ImageRootVolume };
}

export interface ImageRootVolume {
  readonly deviceName: string;
  readonly sizeGiB: number;
  readonly volumeType: string;
}

/** Who makes the request: the handler's Lambda role, or the helper instance's role. */
export type Caller = 'handler' | 'helper';

export interface Authorization extends IamCheck {
  readonly caller: Caller;
}

type Context = { [key: string]: string | string[] };
type Input = { readonly [key: string]: any };

export class RequestAuthorizations {
  constructor(private readonly env: AuthorizationEnvironment) {}

  /** The authorizations of one recorded request, made with the role of whoever made it. */
  of(request: RecordedRequest): Authorization[] {
    const label = `${request.service}:${request.action}`;
    const input: Input = request.input;
    const helper = request.principal === 'helper-instance';
    // A URL the handler presigned is authorized as the handler role, whoever uses it.
    const presigned = request.principal === 'presigned-url';
    const checks = helper ? this.helperChecks(request, input) : this.checks(request, input);
    const caller: Caller = helper ? 'helper' : 'handler';
    const who = helper ? `helper ${request.instanceId}: ` : presigned ? `helper ${request.instanceId} with a URL the handler presigned: ` : '';
    return checks.map((check) => ({ ...check, caller, description: `${who}${label} ${check.description}`.trim() }));
  }

  private checks(request: RecordedRequest, input: Input): Omit<IamCheck, never>[] {
    const tagsOf = (id: string): readonly RecordedTag[] => request.resourceTags[id] ?? [];
    switch (`${request.service}:${request.action}`) {
      case 'ec2:DescribeInstances':
      case 'ec2:DescribeVolumes':
      case 'ec2:DescribeImages':
      case 'ec2:DescribeSnapshots':
      case 'ssm:DescribeInstanceInformation':
      case 'ssm:ListCommandInvocations':
      case 'ssm:GetCommandInvocation':
        // No resource-level permissions (Service Authorization Reference).
        return [{ action: `${request.service}:${request.action}`, resource: '*', context: {}, description: '' }];
      // The encryption-by-default check (handler/encryption-default.ts): the two EC2 reads have no
      // resource-level permissions; DescribeKey is authorized on the key an alias points to (KMS
      // developer guide, "Using aliases to control access").
      case 'ec2:GetEbsEncryptionByDefault':
      case 'ec2:GetEbsDefaultKmsKeyId':
        return [{ action: `ec2:${request.action}`, resource: '*', context: {}, description: '' }];
      case 'kms:DescribeKey':
        return [{ action: 'kms:DescribeKey', resource: this.keyArnOf(input.KeyId), context: {}, description: input.KeyId }];
      case 'ec2:RunInstances':
        return this.runInstances(input);
      case 'ec2:CreateVolume':
        return this.createVolume(input);
      case 'ec2:TerminateInstances':
        return (input.InstanceIds as string[]).map((id) => this.existing('ec2:TerminateInstances', id, tagsOf(id)));
      case 'ec2:DeleteVolume':
        return [this.existing('ec2:DeleteVolume', input.VolumeId, tagsOf(input.VolumeId))];
      case 'ec2:CreateSnapshot':
        return [
          this.existing('ec2:CreateSnapshot', input.VolumeId, tagsOf(input.VolumeId), 'the volume it reads'),
          this.created('ec2:CreateSnapshot', 'snapshot', tagsFor('snapshot', input.TagSpecifications), {}),
          ...this.tagsOnCreate('CreateSnapshot', input.TagSpecifications),
        ];
      case 'ec2:RegisterImage':
        return [
          this.created('ec2:RegisterImage', 'image', tagsFor('image', input.TagSpecifications), {}),
          ...(input.BlockDeviceMappings ?? []).filter((m: Input) => m.Ebs?.SnapshotId)
            .map((m: Input) => this.existing('ec2:RegisterImage', m.Ebs.SnapshotId, tagsOf(m.Ebs.SnapshotId), 'the snapshot it boots from')),
          ...this.tagsOnCreate('RegisterImage', input.TagSpecifications),
        ];
      case 'ec2:DeregisterImage':
        return [this.existing('ec2:DeregisterImage', input.ImageId, tagsOf(input.ImageId))];
      case 'ec2:DeleteSnapshot':
        return [this.existing('ec2:DeleteSnapshot', input.SnapshotId, tagsOf(input.SnapshotId))];
      // What the AMI offers beyond its disk (handler/distribution.ts): each on the AMI or snapshot it names.
      case 'ec2:DescribeImageAttribute':
      case 'ec2:ModifyImageAttribute':
      case 'ec2:EnableImageDeprecation':
      case 'ec2:DisableImageDeprecation':
      case 'ec2:EnableImageDeregistrationProtection':
      case 'ec2:DisableImageDeregistrationProtection':
        return [this.existing(`ec2:${request.action}`, input.ImageId, tagsOf(input.ImageId))];
      case 'ec2:DescribeSnapshotAttribute':
      case 'ec2:ModifySnapshotAttribute':
        return [this.existing(`ec2:${request.action}`, input.SnapshotId, tagsOf(input.SnapshotId))];
      // An account-and-region setting: no resource type (Service Authorization Reference).
      case 'ec2:GetImageBlockPublicAccessState':
        return [{ action: 'ec2:GetImageBlockPublicAccessState', resource: '*', context: {}, description: '' }];
      case 'ec2:CreateTags':
        return (input.Resources as string[]).map((id) => this.existing('ec2:CreateTags', id, tagsOf(id), '', requestTags(input.Tags)));
      case 'ec2:DeleteTags':
        return (input.Resources as string[]).map((id) => this.existing('ec2:DeleteTags', id, tagsOf(id), '',
          input.Tags === undefined ? {} : { 'aws:TagKeys': (input.Tags as RecordedTag[]).map((tag) => tag.Key) }));
      case 'ebs:StartSnapshot':
        return this.startSnapshot(input);
      case 'ebs:PutSnapshotBlock':
      case 'ebs:CompleteSnapshot':
      case 'ebs:ListSnapshotBlocks':
      case 'ebs:GetSnapshotBlock':
        return [{
          action: `ebs:${request.action}`,
          resource: this.arnOf(input.SnapshotId),
          context: resourceTags(['aws:ResourceTag'], tagsOf(input.SnapshotId)),
          description: input.SnapshotId,
        }];
      case 's3:GetObject':
        // A GetObject of a given version is authorized as s3:GetObjectVersion (S3 user guide, "Actions").
        return [
          { action: input.VersionId ? 's3:GetObjectVersion' : 's3:GetObject', resource: this.objectArn(input.Bucket, input.Key), context: OVER_TLS, description: '' },
          ...this.notFoundAnswer(request),
        ];
      case 's3:PutObject':
      case 's3:DeleteObject':
      case 's3:AbortMultipartUpload':
        return [{ action: `s3:${request.action}`, resource: this.objectArn(input.Bucket, input.Key), context: OVER_TLS, description: '' }];
      // A multipart upload's calls are authorized as s3:PutObject on the object (S3 user guide,
      // "Multipart upload API and permissions").
      case 's3:CreateMultipartUpload':
      case 's3:UploadPart':
      case 's3:CompleteMultipartUpload':
        return [{ action: 's3:PutObject', resource: this.objectArn(input.Bucket, input.Key), context: OVER_TLS, description: request.action }];
      case 'ssm:SendCommand':
        return [
          { action: 'ssm:SendCommand', resource: this.documentArn(input.DocumentName), context: {}, description: `document ${input.DocumentName}` },
          ...(input.InstanceIds as string[]).map((id) => ({
            action: 'ssm:SendCommand',
            resource: this.arnOf(id),
            context: resourceTags(['ssm:resourceTag', 'aws:ResourceTag'], tagsOf(id)),
            description: id,
          })),
        ];
      default:
        throw new Error(`No IAM mapping for ${request.service}:${request.action}: add it to test/iam/request-authorizations.ts`);
    }
  }

  /**
   * A request of the helper instance, with its instance profile's role: its SSM agent's calls (AWS
   * Systems Manager user guide, "Reference: ec2messages, ssmmessages, and other API operations":
   * UpdateInstanceInformation is the heartbeat, commands arrive through the ssmmessages control
   * channel or through ec2messages) and the helper script's `aws s3 cp` of the staged objects
   * (HeadObject and GetObject, both authorized as s3:GetObject).
   */
  private helperChecks(request: RecordedRequest, input: Input): IamCheck[] {
    const instanceArn = this.arnOf(request.instanceId ?? input.InstanceId);
    // ssm:SourceInstanceARN is absent for instance-profile credentials (Service Authorization Reference, ssm).
    const source = { 'ec2:SourceInstanceARN': instanceArn };
    const action = `${request.service}:${request.action}`;
    switch (action) {
      case 'ssm:UpdateInstanceInformation':
        return [{ action, resource: instanceArn, context: source, description: '' }];
      case 'ssm:ListInstanceAssociations':
        return [{ action, resource: '*', context: {}, description: '' }];
      case 'ssmmessages:CreateControlChannel':
      case 'ec2messages:GetMessages':
      case 'ec2messages:SendReply':
        return [{ action, resource: '*', context: source, description: '' }];
      case 'ssmmessages:OpenControlChannel':
      case 'ssmmessages:CreateDataChannel':
      case 'ssmmessages:OpenDataChannel':
      case 'ec2messages:GetEndpoint':
      case 'ec2messages:AcknowledgeMessage':
      case 'ec2messages:DeleteMessage':
      case 'ec2messages:FailMessage':
        return [{ action, resource: '*', context: {}, description: '' }];
      case 's3:HeadObject':
      case 's3:GetObject':
        return [{ action: 's3:GetObject', resource: this.objectArn(input.Bucket, input.Key), context: OVER_TLS, description: '' }, ...this.notFoundAnswer(request)];
      default:
        throw new Error(`No IAM mapping for the helper instance's ${action}: add it to test/iam/request-authorizations.ts`);
    }
  }

  private runInstances(input: Input): IamCheck[] {
    const specifications = input.TagSpecifications;
    const subnetArn = this.arn('subnet', input.SubnetId);
    const profileArn: string | undefined = input.IamInstanceProfile?.Arn;
    const checks: IamCheck[] = [
      this.created('ec2:RunInstances', 'instance', tagsFor('instance', specifications), {
        'ec2:InstanceType': input.InstanceType,
        'ec2:MetadataHttpTokens': input.MetadataOptions?.HttpTokens ?? 'optional',
        'ec2:MetadataHttpEndpoint': input.MetadataOptions?.HttpEndpoint ?? 'enabled',
        'ec2:RootDeviceType': 'ebs',
        'ec2:Tenancy': 'default',
        'ec2:InstanceMarketType': 'on-demand',
        ...(profileArn === undefined ? {} : { 'ec2:InstanceProfile': profileArn }),
      }),
      ...this.launchVolumes(input).flatMap((volume) => [
        {
          ...this.created('ec2:RunInstances', 'volume', tagsFor('volume', specifications), {
            'ec2:VolumeType': volume.volumeType,
            'ec2:VolumeSize': String(volume.sizeGiB),
            'ec2:Encrypted': String(volume.encrypted),
          }),
          description: `the new volume ${volume.deviceName}`,
        },
        ...(volume.kmsKeyId === undefined ? [] : this.ebsEncryptionKey(volume.kmsKeyId, `the key of volume ${volume.deviceName}`)),
      ]),
      this.created('ec2:RunInstances', 'network-interface', tagsFor('network-interface', specifications), { 'ec2:Subnet': subnetArn }),
      {
        action: 'ec2:RunInstances',
        resource: this.arn('image', input.ImageId),
        context: { 'ec2:ImageID': input.ImageId, 'ec2:Owner': 'amazon', 'ec2:Public': 'true', 'ec2:RootDeviceType': 'ebs', 'ec2:ImageType': 'machine' },
        description: `image ${input.ImageId}`,
      },
      { action: 'ec2:RunInstances', resource: subnetArn, context: { 'ec2:SubnetID': input.SubnetId }, description: `subnet ${input.SubnetId}` },
      ...(input.SecurityGroupIds as string[] ?? []).map((id) => ({
        action: 'ec2:RunInstances', resource: this.arn('security-group', id), context: { 'ec2:SecurityGroupID': id }, description: `security group ${id}`,
      })),
      ...(input.KeyName === undefined ? [] : [{
        action: 'ec2:RunInstances', resource: this.arn('key-pair', input.KeyName), context: { 'ec2:KeyPairName': input.KeyName }, description: `key pair ${input.KeyName}`,
      }]),
      ...this.tagsOnCreate('RunInstances', specifications),
    ];
    if (profileArn !== undefined) {
      const role = this.env.instanceProfileRoles[profileArn];
      if (role === undefined) {
        throw new Error(`RunInstances passes instance profile ${profileArn}, which the template does not create`);
      }
      checks.push({ action: 'iam:PassRole', resource: role, context: { 'iam:PassedToService': 'ec2.amazonaws.com' }, description: `the role of ${profileArn}` });
    }
    return checks;
  }

  /**
   * The volumes a launch creates: the image's root volume, unless a block device mapping of its
   * device replaces it (a mapping may change its size and type), and one per other mapping with EBS
   * settings (EC2 user guide, "Block device mappings"; a mapping without a VolumeType is gp2).
   */
  private launchVolumes(input: Input): LaunchVolume[] {
    const root = this.env.imageRootVolumes[input.ImageId];
    if (root === undefined) {
      throw new Error(`RunInstances launches image ${input.ImageId}, whose root volume the proof does not know: add it to imageRootVolumes`);
    }
    const mappings: Input[] = input.BlockDeviceMappings ?? [];
    const rootMapping = mappings.find((mapping) => mapping.DeviceName === root.deviceName)?.Ebs ?? {};
    const volumes: LaunchVolume[] = [{
      deviceName: root.deviceName,
      sizeGiB: rootMapping.VolumeSize ?? root.sizeGiB,
      volumeType: rootMapping.VolumeType ?? root.volumeType,
      encrypted: rootMapping.Encrypted === true,
      kmsKeyId: rootMapping.Encrypted === true ? rootMapping.KmsKeyId : undefined,
    }];
    for (const mapping of mappings.filter((m) => m.DeviceName !== root.deviceName && m.Ebs !== undefined)) {
      if (mapping.Ebs.VolumeSize === undefined) {
        throw new Error(`RunInstances maps ${mapping.DeviceName} without a VolumeSize (it would be the size of a snapshot); the proof cannot judge that`);
      }
      volumes.push({
        deviceName: mapping.DeviceName,
        sizeGiB: mapping.Ebs.VolumeSize,
        volumeType: mapping.Ebs.VolumeType ?? 'gp2',
        encrypted: mapping.Ebs.Encrypted === true,
        kmsKeyId: mapping.Ebs.Encrypted === true ? mapping.Ebs.KmsKeyId : undefined,
      });
    }
    return volumes;
  }

  /**
   * What EC2 asks of KMS, with the caller's permissions, to create a volume encrypted with a customer
   * managed key (EBS user guide, "Requirements for Amazon EBS encryption"), through the region's EC2
   * endpoint; the AWS managed key needs no identity permission (its key policy allows EC2's use for
   * the account).
   */
  private ebsEncryptionKey(keyArn: string, description: string): IamCheck[] {
    const viaEc2 = { 'kms:ViaService': `ec2.${this.env.region}.${this.env.urlSuffix}`, 'kms:CallerAccount': this.env.account };
    return [
      { action: 'kms:CreateGrant', resource: keyArn, context: { ...viaEc2, 'kms:GrantIsForAWSResource': 'true' }, description },
      ...['kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey', 'kms:Decrypt'].map((action) => ({ action, resource: keyArn, context: viaEc2, description })),
    ];
  }

  /**
   * A read answered NoSuchKey (GetObject) or NotFound (HeadObject): S3 answers so only to a caller
   * allowed s3:ListBucket on the bucket, and AccessDenied to any other (GetObject API reference,
   * "Permissions"), so the answer the fake gave needed that permission too.
   */
  private notFoundAnswer(request: RecordedRequest): IamCheck[] {
    if (request.error !== 'NoSuchKey' && request.error !== 'NotFound') {
      return [];
    }
    const bucket = String(request.input.Bucket);
    return [{ action: 's3:ListBucket', resource: `arn:${this.env.partition}:s3:::${bucket}`, context: OVER_TLS, description: `to learn that ${request.input.Key} does not exist` }];
  }

  private createVolume(input: Input): IamCheck[] {
    const context: Context = {
      'ec2:VolumeType': input.VolumeType ?? 'gp2',
      'ec2:VolumeSize': String(input.Size),
      'ec2:Encrypted': String(input.Encrypted === true),
      'ec2:AvailabilityZone': input.AvailabilityZone,
      ...(input.KmsKeyId === undefined ? {} : { 'ec2:KmsKeyId': input.KmsKeyId }),
    };
    const checks = [
      this.created('ec2:CreateVolume', 'volume', tagsFor('volume', input.TagSpecifications), context),
      ...this.tagsOnCreate('CreateVolume', input.TagSpecifications),
    ];
    if (input.Encrypted && input.KmsKeyId) {
      checks.push(...this.ebsEncryptionKey(input.KmsKeyId, 'the volume\'s key'));
    }
    return checks;
  }

  private startSnapshot(input: Input): IamCheck[] {
    const tags: RecordedTag[] = input.Tags ?? [];
    const context: Context = {
      ...requestTags(tags),
      'ebs:VolumeSize': String(input.VolumeSize),
      ...(input.Description === undefined ? {} : { 'ebs:Description': input.Description }),
      ...(input.ParentSnapshotId === undefined ? {} : { 'ebs:ParentSnapshot': this.arnOf(input.ParentSnapshotId) }),
    };
    const snapshot = this.newArn('snapshot');
    const checks: IamCheck[] = [{ action: 'ebs:StartSnapshot', resource: snapshot, context, description: 'the new snapshot' }];
    if (tags.length > 0) {
      // Tags on StartSnapshot are also authorized as ec2:CreateTags on the new snapshot; whether that
      // check carries ec2:CreateAction = StartSnapshot, or the new snapshot's ec2:VolumeSize (the SAR
      // lists it for snapshots), is undocumented, so every combination must be allowed.
      const size = { 'ec2:VolumeSize': String(input.VolumeSize) };
      checks.push(
        { action: 'ec2:CreateTags', resource: snapshot, context: { ...requestTags(tags), 'ec2:CreateAction': 'StartSnapshot' }, description: 'tags of the new snapshot, with ec2:CreateAction' },
        { action: 'ec2:CreateTags', resource: snapshot, context: requestTags(tags), description: 'tags of the new snapshot, without ec2:CreateAction' },
        { action: 'ec2:CreateTags', resource: snapshot, context: { ...requestTags(tags), 'ec2:CreateAction': 'StartSnapshot', ...size }, description: 'tags of the new snapshot, with ec2:CreateAction and its size' },
        { action: 'ec2:CreateTags', resource: snapshot, context: { ...requestTags(tags), ...size }, description: 'tags of the new snapshot, with its size' },
      );
    }
    if (input.Encrypted && input.KmsKeyArn) {
      // AWS's EBS direct example policy for encrypted snapshots lists these; it documents no kms:ViaService.
      checks.push(
        { action: 'kms:CreateGrant', resource: input.KmsKeyArn, context: { 'kms:GrantIsForAWSResource': 'true' }, description: 'the snapshot\'s key' },
        ...['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'].map((action) => ({
          action, resource: input.KmsKeyArn, context: {}, description: 'the snapshot\'s key',
        })),
      );
    }
    return checks;
  }

  /** ec2:CreateTags for each tag specification of a resource-creating call. */
  private tagsOnCreate(createAction: string, specifications: Input[] | undefined): IamCheck[] {
    return (specifications ?? []).map((specification) => ({
      action: 'ec2:CreateTags',
      resource: this.newArn(specification.ResourceType),
      context: { ...requestTags(specification.Tags ?? []), 'ec2:CreateAction': createAction },
      description: `tags of the new ${specification.ResourceType}`,
    }));
  }

  /** A resource the request creates: a new ARN, the request's tags, and what else the call says of it. */
  private created(action: string, type: string, tags: readonly RecordedTag[], context: Context): IamCheck {
    return { action, resource: this.newArn(type), context: { ...(tags.length > 0 ? requestTags(tags) : {}), ...context }, description: `the new ${type}` };
  }

  /** An existing resource named by id, with its tags at the time of the request. */
  private existing(action: string, id: string, tags: readonly RecordedTag[], what = '', extra: Context = {}): IamCheck {
    const service = action.split(':')[0];
    const keys: ('ec2:ResourceTag' | 'aws:ResourceTag')[] = service === 'ec2' ? ['ec2:ResourceTag', 'aws:ResourceTag'] : ['aws:ResourceTag'];
    return { action, resource: this.arnOf(id), context: { ...resourceTags(keys, tags), ...extra }, description: `${what} ${id}`.trim() };
  }

  /** ARN of an EC2 resource by its id. */
  arnOf(id: string): string {
    const type = Object.entries(ID_PREFIXES).find(([prefix]) => id.startsWith(`${prefix}-`))?.[1];
    if (type === undefined) {
      throw new Error(`No EC2 resource type for id ${id}`);
    }
    return this.arn(type, id);
  }

  /**
   * The key a KMS KeyId names: a key ARN as is, a key id in this account and region. An alias (name
   * or ARN) is authorized on the key it points to, which the request does not show: modelled as a
   * key of the alias's account and region (an alias of this account names one of its keys).
   */
  keyArnOf(keyId: string): string {
    const arn = /^arn:[^:]+:kms:([^:]*):([^:]*):(key|alias)\/(.+)$/.exec(keyId);
    if (arn) {
      return arn[3] === 'key' ? keyId : `arn:${this.env.partition}:kms:${arn[1]}:${arn[2]}:key/target-of-alias-${arn[4].replace(/\//g, '-')}`;
    }
    const local = keyId.startsWith('alias/') ? `target-of-alias-${keyId.slice(6).replace(/\//g, '-')}` : keyId;
    return `arn:${this.env.partition}:kms:${this.env.region}:${this.env.account}:key/${local}`;
  }

  arn(type: string, id: string): string {
    const account = type === 'image' || type === 'snapshot' ? '' : this.env.account;
    return `arn:${this.env.partition}:ec2:${this.env.region}:${account}:${type}/${id}`;
  }

  /**
   * The ARN of a resource being created. IAM authorizes it as `<type>/*`; a concrete placeholder id
   * keeps the simulator judging this one resource rather than "any resource the policy names".
   */
  private newArn(type: string): string {
    return this.arn(type, `${TYPE_PREFIXES[type] ?? type}-new`);
  }

  objectArn(bucket: string, key: string): string {
    return `arn:${this.env.partition}:s3:::${bucket}/${key}`;
  }

  /**
   * An SSM document's ARN. AWS-owned documents (AWS-*) have no account in their ARN, but the
   * simulator cannot match an empty account against the Service Authorization Reference's document
   * ARN; they are judged with this account instead, which the policy's `*` account matches as it
   * matches the empty one.
   */
  documentArn(name: string): string {
    return `arn:${this.env.partition}:ssm:${this.env.region}:${this.env.account}:document/${name}`;
  }
}

/** The AWS SDK and the AWS CLI call S3 over HTTPS, which the staging bucket's policy requires. */
const OVER_TLS = { 'aws:SecureTransport': 'true' };

interface LaunchVolume {
  readonly deviceName: string;
  readonly sizeGiB: number;
  readonly volumeType: string;
  readonly encrypted: boolean;
  readonly kmsKeyId?: string;
}

const ID_PREFIXES: { [prefix: string]: string } = {
  'i': 'instance',
  'vol': 'volume',
  'snap': 'snapshot',
  'ami': 'image',
  'eni': 'network-interface',
  'subnet': 'subnet',
  'sg': 'security-group',
};
const TYPE_PREFIXES: { [type: string]: string } = Object.fromEntries(Object.entries(ID_PREFIXES).map(([prefix, type]) => [type, prefix]));

function tagsFor(resourceType: string, specifications: Input[] | undefined): RecordedTag[] {
  return specifications?.find((specification) => specification.ResourceType === resourceType)?.Tags ?? [];
}

/** aws:RequestTag/<key> for each tag, and aws:TagKeys. */
export function requestTags(tags: readonly RecordedTag[]): Context {
  return {
    ...Object.fromEntries(tags.map((tag) => [`aws:RequestTag/${tag.Key}`, tag.Value])),
    'aws:TagKeys': tags.map((tag) => tag.Key),
  };
}

/** `<prefix>/<key>` for each tag of an existing resource. */
export function resourceTags(prefixes: readonly string[], tags: readonly RecordedTag[]): Context {
  return Object.fromEntries(prefixes.flatMap((prefix) => tags.map((tag) => [`${prefix}/${tag.Key}`, tag.Value])));
}
