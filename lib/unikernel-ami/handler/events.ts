/**
 * The events of the CDK provider framework (custom_resources.Provider) as this handler sees them.
 * They mirror aws-cdk-lib's OnEventRequest/OnEventResponse/IsCompleteRequest/IsCompleteResponse,
 * written out here so that the Lambda bundle does not pull in aws-cdk-lib.
 */
import { UnikernelAmiAttributes, UnikernelAmiProperties } from '../types';

export type RequestType = 'Create' | 'Update' | 'Delete';

/** What the framework passes to onEvent. The ResponseURL is a presigned secret: never log it. */
export interface OnEventRequest {
  readonly RequestType: RequestType;
  readonly ServiceToken?: string;
  readonly ResponseURL?: string;
  readonly StackId: string;
  readonly RequestId: string;
  readonly LogicalResourceId: string;
  readonly ResourceType: string;
  /** Absent on Create; on Update and Delete, the id the resource has now. */
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: UnikernelAmiProperties;
  /** Update only: the properties before the update. */
  readonly OldResourceProperties?: UnikernelAmiProperties;
}

/** What a build has to do, decided by onEvent and carried to every isComplete call. */
export enum BuildAction {
  /** Write a new disk image, snapshot it and register an AMI. */
  BUILD = 'build',
  /** Only tags or the removal policy changed: the AMI stays, its tags are updated. */
  RETAG = 'retag',
  /** Remove what the build made (the AMI and snapshot only under the destroy removal policy). */
  DELETE = 'delete',
}

/**
 * State onEvent hands to isComplete. A custom top-level field rather than `Data`, because the
 * framework turns every `Data` key into a resource attribute, and these ids are transient.
 */
export interface BuildState {
  readonly Action: BuildAction;
  /** Helper-instance build: the helper instance (absent when RunInstances' answer was lost: isComplete asks again with the same client token). */
  readonly InstanceId?: string;
  /** EBS-direct build: the snapshot written by the EBS direct APIs. */
  readonly SnapshotId?: string;
  /**
   * Rename: the snapshot of the resource's current AMI, registered again under the new name. Not a
   * snapshot of this build: its cleanup never deletes it.
   */
  readonly SourceSnapshotId?: string;
  /** EBS-direct build: the 512 KiB blocks the snapshot holds (for the build record). */
  readonly Blocks?: number;
  /** Delete: the build had finished (an available AMI) when the Delete began, so it left nothing transient. */
  readonly BuildFinished?: boolean;
  /** When onEvent began (ms since the epoch): the handler's own deadline counts from it. */
  readonly StartedAt?: number;
  /**
   * Delete: the snapshots and instances onEvent's pass left (a snapshot its just-deregistered AMI
   * still holds, an instance EC2 does not know yet), removed by id in later passes, whose tag
   * lookups may lag; and when the youngest of them was made.
   */
  readonly SnapshotIds?: readonly string[];
  readonly InstanceIds?: readonly string[];
  readonly LeftSince?: number;
  /** Delete: onEvent's pass saw the build's AMI by its id (see PassFindings in cleanup.ts). */
  readonly ImageSeen?: boolean;
}

export interface OnEventResponse {
  readonly PhysicalResourceId: string;
  readonly Data?: Partial<UnikernelAmiAttributes>;
  readonly BuildState: BuildState;
}

/** The framework calls isComplete with onEvent's request merged with onEvent's response. */
export type IsCompleteRequest = OnEventRequest & OnEventResponse;

export interface IsCompleteResponse {
  readonly IsComplete: boolean;
  /** Only when complete: the framework refuses Data while IsComplete is false. */
  readonly Data?: UnikernelAmiAttributes;
}
