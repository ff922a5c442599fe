/**
 * What a helper-instance build has done so far, kept in the staging bucket between isComplete
 * calls. The provider framework hands isComplete only what onEvent returned, and EC2 and SSM list
 * new resources late (eventual consistency); S3 reads its own writes at once ("Amazon S3 data
 * consistency model": strong read-after-write consistency). So the ids that calls without a client
 * token return (SendCommand's command, CreateSnapshot's snapshot) are written here as soon as they
 * come back: a later round continues with them instead of repeating the call, and cleanup removes
 * them by id.
 */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PROGRESS_OBJECT_NAME } from '../types';
import { withRetry } from './retry';
import { buildPrefix } from './staging';

export interface HelperProgress {
  /** When the build's onEvent began: nothing of the build is older. */
  readonly startedAt?: number;
  /** The helper (written by onEvent, or by the isComplete that learned its id when RunInstances' answer was lost). */
  readonly instanceId?: string;
  /** The helper script's SSM command, and when it was sent. */
  readonly commandId?: string;
  readonly commandSentAt?: number;
  /** Snapshots of the helper's volume, in the order CreateSnapshot returned them: the first is the build's, any other a duplicate to delete. */
  readonly snapshotIds?: readonly string[];
  readonly snapshotCreatedAt?: number;
}

/**
 * Beside the staged image: the handler may already read, write and delete there, and the staging
 * bucket's lifecycle rule expires it should everything else fail. It holds only resource ids.
 */
export function progressKey(buildId: string): string {
  return `${buildPrefix(buildId)}${PROGRESS_OBJECT_NAME}`;
}

export async function readProgress(s3: S3Client, bucket: string, buildId: string): Promise<HelperProgress> {
  try {
    const response = await withRetry('s3:GetObject progress', () => s3.send(new GetObjectCommand({ Bucket: bucket, Key: progressKey(buildId) })));
    return JSON.parse(await response.Body!.transformToString()) as HelperProgress;
  } catch (err) {
    if ((err as Error).name === 'NoSuchKey') {
      return {};
    }
    throw err;
  }
}

export async function writeProgress(s3: S3Client, bucket: string, buildId: string, progress: HelperProgress): Promise<void> {
  await withRetry('s3:PutObject progress', () =>
    s3.send(new PutObjectCommand({ Bucket: bucket, Key: progressKey(buildId), Body: JSON.stringify(progress), ContentType: 'application/json' })),
  );
}

/** Deletes the progress object; a missing object or bucket means it is gone already. */
export async function deleteProgress(s3: S3Client, bucket: string, buildId: string): Promise<void> {
  try {
    await withRetry('s3:DeleteObject progress', () => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: progressKey(buildId) })));
  } catch (err) {
    if ((err as Error).name !== 'NoSuchBucket') {
      throw err;
    }
  }
}
