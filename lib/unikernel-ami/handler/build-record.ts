/**
 * A build's record: the outcome of a build, written once, where it lasts as long as the AMI.
 *
 * Where: the tag BUILD_RECORD_TAG. A complete build records itself on its AMI and on the AMI's root
 * snapshot, after everything else of the build is tidied up and before isComplete first answers
 * complete; a build that fails records itself on each AMI its failure cleanup is about to deregister
 * (so that, should the deregistration not happen, a later sweep can prove the build failed).
 * Why a tag and not an S3 object: an EBS-direct build has no staging bucket; the staging bucket's
 * lifecycle rule expires what is under its prefix after a day, and a key outside it would need a
 * grant of its own and outlive a stack that drops the bucket; a tag lives exactly as long as the
 * AMI and snapshot it describes, and the handler role may already tag its own AMIs and snapshots.
 *
 * Write-once: EC2 tags have no conditional write, so the handler reads the AMI by its id first and
 * writes only when it carries no record; two deliveries of the same isComplete racing past that
 * read write the same outcome, AMI, snapshot and start time (they are the build's: one AMI per
 * build, its name is unique), differing at most in the recorded time of the last stage. A complete
 * record is never replaced by a failed one: a failure cleanup leaves an AMI with a complete record
 * alone.
 *
 * Format (for readers such as the CLI's `watch`): at most 256 characters (an EC2 tag value), of
 * space-separated `key=value` pairs, keys in any order, unknown keys to be ignored:
 *
 *     v=1 outcome=complete started=1796000000 stages=snapshot-started@+12/image-registered@+250/complete@+290 image=ami-0abc snapshot=snap-0def blocks=37 progress=100
 *
 * - `v`: the format version, 1.
 * - `outcome`: `complete` or `failed`.
 * - `started`: when the build's onEvent began, in seconds since the Unix epoch.
 * - `stages`: the stages reached, in order, each `name@+seconds` after `started`, joined by `/`:
 *   `snapshot-started` (the snapshot's StartTime), `image-registered` (the AMI's CreationDate), and
 *   the outcome itself (`complete` or `failed`, when it was recorded).
 * - `image`, `snapshot`: the AMI and its root snapshot.
 * - `blocks`: the 512 KiB blocks the snapshot holds (written by EBS direct), when known.
 * - `progress`: the snapshot's progress in percent when the record was written.
 */
import { CreateTagsCommand, EC2Client, Image } from '@aws-sdk/client-ec2';
import { BUILD_RECORD_TAG, UnikernelAmiAttributes } from '../types';
import { clock, invocationTimeLeft } from './clock';
import { describeImageById, findBuildImages, rootSnapshotOf } from './image';
import { withRetry } from './retry';

export type BuildOutcome = 'complete' | 'failed';
export type BuildStage = 'snapshot-started' | 'image-registered' | BuildOutcome;

export interface BuildStageTime {
  readonly stage: BuildStage;
  /** When the stage was reached, in ms since the epoch (whole seconds). */
  readonly at: number;
}

/** A build's record, as the tag BUILD_RECORD_TAG holds it (see the file comment for the format). */
export interface BuildRecord {
  readonly version: 1;
  readonly outcome: BuildOutcome;
  /** When the build's onEvent began, in ms since the epoch (whole seconds). */
  readonly startedAt: number;
  readonly stages: readonly BuildStageTime[];
  readonly imageId?: string;
  readonly snapshotId?: string;
  readonly blocks?: number;
  readonly progressPercent?: number;
}

/** The largest tag value EC2 accepts. */
const MAX_TAG_VALUE_CHARS = 256;
const STAGES: readonly BuildStage[] = ['snapshot-started', 'image-registered', 'complete', 'failed'];

export function formatBuildRecord(record: BuildRecord): string {
  const started = Math.floor(record.startedAt / 1000);
  const parts = [
    'v=1',
    `outcome=${record.outcome}`,
    `started=${started}`,
    `stages=${record.stages.map((s) => `${s.stage}@+${Math.max(0, Math.floor(s.at / 1000) - started)}`).join('/')}`,
    record.imageId ? `image=${record.imageId}` : '',
    record.snapshotId ? `snapshot=${record.snapshotId}` : '',
    record.blocks !== undefined ? `blocks=${record.blocks}` : '',
    record.progressPercent !== undefined ? `progress=${record.progressPercent}` : '',
  ].filter((part) => part !== '');
  const value = parts.join(' ');
  if (value.length > MAX_TAG_VALUE_CHARS) {
    throw new Error(`A build record is ${value.length} characters, more than an EC2 tag value holds: ${value}`);
  }
  return value;
}

/** The record a tag value holds; undefined for a value that is no record of format 1. */
export function parseBuildRecord(value: string | undefined): BuildRecord | undefined {
  if (!value) {
    return undefined;
  }
  const fields = new Map(value.split(' ').map((pair) => {
    const at = pair.indexOf('=');
    return [pair.slice(0, at), pair.slice(at + 1)] as const;
  }));
  const outcome = fields.get('outcome');
  const started = Number(fields.get('started'));
  if (fields.get('v') !== '1' || (outcome !== 'complete' && outcome !== 'failed') || !Number.isFinite(started)) {
    return undefined;
  }
  const stages = (fields.get('stages') ?? '').split('/').filter((s) => s !== '').map((s) => {
    const [stage, offset] = s.split('@+');
    return { stage: stage as BuildStage, at: (started + Number(offset)) * 1000 };
  }).filter((s) => STAGES.includes(s.stage) && Number.isFinite(s.at));
  const number = (key: string) => (fields.has(key) && Number.isFinite(Number(fields.get(key))) ? Number(fields.get(key)) : undefined);
  return {
    version: 1,
    outcome,
    startedAt: started * 1000,
    stages,
    imageId: fields.get('image'),
    snapshotId: fields.get('snapshot'),
    blocks: number('blocks'),
    progressPercent: number('progress'),
  };
}

/** The record among a resource's tags. */
export function recordOf(tags: readonly { Key?: string; Value?: string }[] | undefined): BuildRecord | undefined {
  return parseBuildRecord(tags?.find((tag) => tag.Key === BUILD_RECORD_TAG)?.Value);
}

/** Whether a resource's tags record its build as complete. */
export function isRecordedComplete(tags: readonly { Key?: string; Value?: string }[] | undefined): boolean {
  return recordOf(tags)?.outcome === 'complete';
}

/** What a record says of a build's AMI and its snapshot, as read by id. */
export interface RecordedImage {
  readonly image: Image;
  readonly snapshotId: string;
  readonly snapshotStartedAt?: number;
}

/**
 * Records a build as complete on its available AMI (read by id just before) and the AMI's root
 * snapshot (not for a rename, whose snapshot keeps the record of the build that wrote it), unless the AMI carries a complete record already (an earlier delivery of the same
 * event wrote it): that one is kept and returned.
 */
export async function recordCompletion(ec2: EC2Client, recorded: RecordedImage, startedAt: number, blocks?: number, onSnapshot = true): Promise<BuildRecord> {
  const existing = recordOf(recorded.image.Tags);
  if (existing?.outcome === 'complete') {
    return existing;
  }
  const imageRegisteredAt = recorded.image.CreationDate ? new Date(recorded.image.CreationDate).getTime() : undefined;
  const record: BuildRecord = {
    version: 1,
    outcome: 'complete',
    startedAt,
    stages: [
      ...(recorded.snapshotStartedAt !== undefined ? [{ stage: 'snapshot-started' as const, at: recorded.snapshotStartedAt }] : []),
      ...(imageRegisteredAt !== undefined ? [{ stage: 'image-registered' as const, at: imageRegisteredAt }] : []),
      { stage: 'complete', at: clock().now() },
    ],
    imageId: recorded.image.ImageId,
    snapshotId: recorded.snapshotId,
    blocks,
    progressPercent: 100,
  };
  await withRetry('ec2:CreateTags build-record', () => ec2.send(new CreateTagsCommand({
    Resources: onSnapshot ? [recorded.image.ImageId!, recorded.snapshotId] : [recorded.image.ImageId!],
    Tags: [{ Key: BUILD_RECORD_TAG, Value: formatBuildRecord(record) }],
  })));
  return record;
}

/** Records a build as failed on an AMI its failure cleanup is about to deregister (the caller has checked it carries no complete record). */
export async function recordFailure(ec2: EC2Client, image: Image, startedAt: number | undefined): Promise<void> {
  const registeredAt = image.CreationDate ? new Date(image.CreationDate).getTime() : clock().now();
  const record: BuildRecord = {
    version: 1,
    outcome: 'failed',
    startedAt: startedAt ?? registeredAt,
    stages: [{ stage: 'image-registered', at: registeredAt }, { stage: 'failed', at: clock().now() }],
    imageId: image.ImageId,
  };
  await withRetry('ec2:CreateTags build-record', () => ec2.send(new CreateTagsCommand({
    Resources: [image.ImageId!],
    Tags: [{ Key: BUILD_RECORD_TAG, Value: formatBuildRecord(record) }],
  })));
}

/**
 * The attributes of a build recorded complete: an AMI of the build (found by its build tag) that,
 * read again by its id, is available and carries a complete record. A build that has just
 * completed may not be listed by the tag filter yet: `waitsMs` are the pauses between further
 * look-ups, taken only while more than `reserveMs` of the invocation's time would be left after them.
 */
export async function findRecordedCompletion(ec2: EC2Client, buildId: string, waitsMs: readonly number[] = [], reserveMs = 0): Promise<UnikernelAmiAttributes | undefined> {
  for (let lookup = 0; ; lookup++) {
    for (const listed of await findBuildImages(ec2, buildId)) {
      const image = await describeImageById(ec2, listed.ImageId!);
      const snapshotId = image ? rootSnapshotOf(image) : undefined;
      if (image?.State === 'available' && isRecordedComplete(image.Tags) && snapshotId && image.KernelId) {
        return { ImageId: image.ImageId!, SnapshotId: snapshotId, KernelId: image.KernelId, ImageName: image.Name };
      }
    }
    if (lookup >= waitsMs.length || waitsMs[lookup] + reserveMs >= invocationTimeLeft()) {
      return undefined;
    }
    await clock().sleep(waitsMs[lookup]);
  }
}
