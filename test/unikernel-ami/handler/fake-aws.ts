/**
 * A small in-memory stand-in for the EC2, SSM and S3 APIs the handler calls, wired into
 * aws-sdk-client-mock. No AWS is involved: tests move resources between states by hand (as AWS
 * would over time) and call isComplete again. Describe* filters on tags are honoured, so a handler
 * that looked for the wrong tag would find nothing.
 */
import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeleteVolumeCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  EC2Client,
  Filter,
  RegisterImageCommand,
  RunInstancesCommand,
  Tag,
  TagSpecification,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';

export const AVAILABILITY_ZONE = 'us-east-1b';

export function awsError(name: string, message = `${name} (fake)`, httpStatusCode = 400): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode } });
}

interface Tagged {
  tags: Tag[];
}
export interface FakeInstance extends Tagged { state: string; clientToken?: string; launchTime: Date }
export interface FakeVolume extends Tagged { state: string; attachedTo?: string; attachment?: string }
export interface FakeSnapshot extends Tagged { state: string; volumeId?: string; message?: string }
export interface FakeImage extends Tagged { state: string; name: string; snapshotId: string; kernelId: string }
export interface FakeInvocation { commandId: string; instanceId: string; comment: string; status: string; stderr: string }

export class FakeAws {
  readonly ec2 = mockClient(EC2Client);
  readonly s3 = mockClient(S3Client);
  readonly ssm = mockClient(SSMClient);

  readonly instances = new Map<string, FakeInstance>();
  readonly volumes = new Map<string, FakeVolume>();
  readonly snapshots = new Map<string, FakeSnapshot>();
  readonly images = new Map<string, FakeImage>();
  readonly invocations: FakeInvocation[] = [];
  readonly objects = new Map<string, Uint8Array>();
  readonly ssmOnline = new Set<string>();
  /**
   * When true, each snapshot CreateSnapshot makes answers InvalidSnapshot.NotFound to its first
   * describe by id, as EC2 (eventually consistent) may right after creating it.
   */
  newSnapshotsLag = false;
  private readonly snapshotsNotYetVisible = new Set<string>();
  private counter = 0;

  /** Forgets all resources and calls, and wires the fakes again. */
  reset(): void {
    for (const mock of [this.ec2, this.s3, this.ssm]) {
      mock.reset();
    }
    for (const map of [this.instances, this.volumes, this.snapshots, this.images, this.objects]) {
      map.clear();
    }
    this.invocations.length = 0;
    this.ssmOnline.clear();
    this.newSnapshotsLag = false;
    this.snapshotsNotYetVisible.clear();
    this.counter = 0;
    this.wireEc2();
    this.wireSsm();
    this.wireS3();
  }

  private nextId(prefix: string): string {
    return `${prefix}-0f${(++this.counter).toString(16).padStart(15, '0')}`;
  }

  private wireEc2(): void {
    this.ec2.on(DescribeSubnetsCommand).callsFake((input) => ({
      Subnets: (input.SubnetIds ?? []).map((SubnetId: string) => ({ SubnetId, AvailabilityZone: AVAILABILITY_ZONE })),
    }));
    this.ec2.on(RunInstancesCommand).callsFake((input) => {
      const existing = [...this.instances].find(([, i]) => i.clientToken !== undefined && i.clientToken === input.ClientToken);
      const id = existing?.[0] ?? this.nextId('i');
      if (!existing) {
        this.instances.set(id, { state: 'pending', launchTime: new Date(), clientToken: input.ClientToken, tags: tagsFor('instance', input.TagSpecifications) });
      }
      return { Instances: [{ InstanceId: id }] };
    });
    this.ec2.on(CreateVolumeCommand).callsFake((input) => {
      const id = this.nextId('vol');
      this.volumes.set(id, { state: 'creating', tags: tagsFor('volume', input.TagSpecifications) });
      return { VolumeId: id };
    });
    this.ec2.on(DescribeInstancesCommand).callsFake((input) => {
      const states: string[] | undefined = input.Filters?.find((f: Filter) => f.Name === 'instance-state-name')?.Values;
      const found = this.select(this.instances, input.InstanceIds, input.Filters).filter(([, i]) => !states || states.includes(i.state));
      return { Reservations: found.length ? [{ Instances: found.map(([id, i]) => ({ InstanceId: id, State: { Name: i.state }, LaunchTime: i.launchTime })) }] : [] };
    });
    this.ec2.on(DescribeVolumesCommand).callsFake((input) => ({
      Volumes: this.select(this.volumes, input.VolumeIds, input.Filters).map(([id, v]) => ({
        VolumeId: id,
        State: v.state,
        Attachments: v.attachedTo ? [{ InstanceId: v.attachedTo, State: v.attachment }] : [],
      })),
    }));
    this.ec2.on(AttachVolumeCommand).callsFake((input) => {
      const volume = this.volumes.get(input.VolumeId)!;
      Object.assign(volume, { state: 'in-use', attachedTo: input.InstanceId, attachment: 'attaching' });
      return {};
    });
    this.ec2.on(TerminateInstancesCommand).callsFake((input) => {
      for (const id of input.InstanceIds ?? []) {
        const instance = this.instances.get(id);
        if (!instance) throw awsError('InvalidInstanceID.NotFound');
        if (instance.state !== 'terminated') instance.state = 'shutting-down';
      }
      return {};
    });
    this.ec2.on(DeleteVolumeCommand).callsFake((input) => {
      const volume = this.volumes.get(input.VolumeId);
      if (!volume) throw awsError('InvalidVolume.NotFound');
      if (volume.state !== 'available') throw awsError('VolumeInUse');
      this.volumes.delete(input.VolumeId);
      return {};
    });
    this.ec2.on(CreateSnapshotCommand).callsFake((input) => {
      const id = this.nextId('snap');
      this.snapshots.set(id, { state: 'pending', volumeId: input.VolumeId, tags: tagsFor('snapshot', input.TagSpecifications) });
      if (this.newSnapshotsLag) this.snapshotsNotYetVisible.add(id);
      return { SnapshotId: id, State: 'pending' };
    });
    this.ec2.on(DescribeSnapshotsCommand).callsFake((input) => {
      const ids: string[] = input.SnapshotIds ?? [];
      if (ids.some((id) => !this.snapshots.has(id))) throw awsError('InvalidSnapshot.NotFound');
      const lagging = ids.filter((id) => this.snapshotsNotYetVisible.delete(id));
      if (lagging.length > 0) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${lagging[0]}' does not exist.`);
      return {
        Snapshots: this.select(this.snapshots, input.SnapshotIds, input.Filters).map(([id, s]) => ({
          SnapshotId: id,
          State: s.state,
          StateMessage: s.message,
          Tags: s.tags,
        })),
      };
    });
    this.ec2.on(DeleteSnapshotCommand).callsFake((input) => {
      if (!this.snapshots.delete(input.SnapshotId)) throw awsError('InvalidSnapshot.NotFound');
      return {};
    });
    this.ec2.on(RegisterImageCommand).callsFake((input) => {
      if ([...this.images.values()].some((i) => i.name === input.Name)) throw awsError('InvalidAMIName.Duplicate');
      const id = this.nextId('ami');
      const snapshotId = input.BlockDeviceMappings[0].Ebs.SnapshotId;
      this.images.set(id, { state: 'pending', name: input.Name, snapshotId, kernelId: input.KernelId, tags: tagsFor('image', input.TagSpecifications) });
      return { ImageId: id };
    });
    this.ec2.on(DescribeImagesCommand).callsFake((input) => ({
      Images: this.select(this.images, input.ImageIds, input.Filters).filter(([, i]) => {
        const names: string[] | undefined = input.Filters?.find((f: Filter) => f.Name === 'name')?.Values;
        return !names || names.includes(i.name);
      }).map(([id, i]) => ({
        ImageId: id,
        Name: i.name,
        State: i.state,
        KernelId: i.kernelId,
        RootDeviceName: '/dev/sda1',
        BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: i.snapshotId } }],
        Tags: i.tags,
      })),
    }));
    this.ec2.on(DeregisterImageCommand).callsFake((input) => {
      if (!this.images.delete(input.ImageId)) throw awsError('InvalidAMIID.NotFound');
      return {};
    });
    this.ec2.on(CreateTagsCommand).callsFake((input) => {
      for (const resource of this.taggable(input.Resources)) {
        for (const tag of input.Tags) {
          resource.tags = [...resource.tags.filter((t) => t.Key !== tag.Key), tag];
        }
      }
      return {};
    });
    this.ec2.on(DeleteTagsCommand).callsFake((input) => {
      const keys = new Set((input.Tags ?? []).map((t: Tag) => t.Key));
      for (const resource of this.taggable(input.Resources)) {
        resource.tags = resource.tags.filter((t) => !keys.has(t.Key));
      }
      return {};
    });
  }

  private wireSsm(): void {
    this.ssm.on(DescribeInstanceInformationCommand).callsFake((input) => ({
      InstanceInformationList: (input.Filters?.[0]?.Values ?? [])
        .filter((id: string) => this.ssmOnline.has(id))
        .map((InstanceId: string) => ({ InstanceId, PingStatus: 'Online' })),
    }));
    this.ssm.on(ListCommandInvocationsCommand).callsFake((input) => ({
      CommandInvocations: this.invocations
        .filter((i) => i.instanceId === input.InstanceId)
        .map((i) => ({ CommandId: i.commandId, InstanceId: i.instanceId, Comment: i.comment, Status: i.status })),
    }));
    this.ssm.on(SendCommandCommand).callsFake((input) => {
      const commandId = `cmd-${++this.counter}`;
      this.invocations.push({ commandId, instanceId: input.InstanceIds[0], comment: input.Comment, status: 'InProgress', stderr: '' });
      return { Command: { CommandId: commandId } };
    });
    this.ssm.on(GetCommandInvocationCommand).callsFake((input) => {
      const invocation = this.invocations.find((i) => i.commandId === input.CommandId && i.instanceId === input.InstanceId);
      if (!invocation) throw awsError('InvocationDoesNotExist');
      return { Status: invocation.status, StandardErrorContent: invocation.stderr, ResponseCode: invocation.status === 'Success' ? 0 : 1 };
    });
  }

  private wireS3(): void {
    this.s3.on(PutObjectCommand).callsFake((input) => {
      const body = input.Body;
      this.objects.set(`${input.Bucket}/${input.Key}`, typeof body === 'string' ? Buffer.from(body) : body);
      return {};
    });
    this.s3.on(DeleteObjectCommand).callsFake((input) => {
      this.objects.delete(`${input.Bucket}/${input.Key}`);
      return {};
    });
    this.s3.on(GetObjectCommand).callsFake((input) => {
      const bytes = this.objects.get(`${input.Bucket}/${input.Key}${input.VersionId ? `?versionId=${input.VersionId}` : ''}`);
      if (!bytes) throw awsError('NoSuchKey', 'The specified key does not exist.', 404);
      return { Body: { transformToByteArray: async () => bytes } };
    });
  }

  /** Puts a kernel object where GetObject (with that version) finds it. */
  putKernel(bucket: string, key: string, version: string | undefined, bytes: Uint8Array): void {
    this.objects.set(`${bucket}/${key}${version ? `?versionId=${version}` : ''}`, bytes);
  }

  private select<T extends Tagged>(map: Map<string, T>, ids: string[] | undefined, filters: Filter[] | undefined): [string, T][] {
    return [...map].filter(([id, resource]) => (!ids || ids.includes(id)) && matchesTagFilters(resource, filters));
  }

  private taggable(ids: string[]): Tagged[] {
    return ids.flatMap((id): Tagged[] => {
      const resource: Tagged | undefined = this.images.get(id) ?? this.snapshots.get(id) ?? this.volumes.get(id) ?? this.instances.get(id);
      return resource ? [resource] : [];
    });
  }

  tagsOf(id: string): Record<string, string> {
    const resource = this.taggable([id])[0];
    return Object.fromEntries((resource?.tags ?? []).map((t) => [t.Key!, t.Value!]));
  }
}

function tagsFor(resourceType: string, specifications: TagSpecification[] | undefined): Tag[] {
  return specifications?.find((s) => s.ResourceType === resourceType)?.Tags ?? [];
}

/** `tag:<key>` filters as EC2 applies them; other filters (state, name) are handled by the caller or ignored. */
function matchesTagFilters(resource: Tagged, filters: Filter[] | undefined): boolean {
  return (filters ?? [])
    .filter((f) => f.Name?.startsWith('tag:'))
    .every((f) => resource.tags.some((t) => `tag:${t.Key}` === f.Name && f.Values?.includes(t.Value!)));
}
