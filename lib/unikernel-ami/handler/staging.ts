/**
 * Staging for the helper-instance strategy: the handler encodes the disk image's non-zero blocks
 * (gzip) with a manifest of their SHA-256 digests, and puts both in the staging bucket, where the
 * helper reads them (see helper-script.ts).
 */
import { createHash } from 'crypto';
import { createGzip } from 'zlib';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DiskImage } from '../../disk-image';
import { EBS_SNAPSHOT_BLOCK_BYTES } from '../../pv-grub';
import { MANIFEST_MAGIC } from './helper-script';
import { StepLog } from './log';
import { BuildSpec } from './properties';
import { withRetry } from './retry';

/** What staging needs of a build. */
export interface StagingContext {
  readonly s3: S3Client;
  readonly buildId: string;
  readonly spec: BuildSpec;
  readonly log: StepLog;
}

export interface StagedImage {
  /** gzip of the non-zero 512 KiB blocks, in index order. */
  readonly blocksGz: Buffer;
  /** A header line, then `<index> <sha256 hex>` per block. */
  readonly manifest: string;
  readonly blockCount: number;
}

export function stagingKeys(buildId: string) {
  const prefix = `builds/${buildId}/`;
  return { blocks: `${prefix}blocks.gz`, manifest: `${prefix}manifest.txt` };
}

/** Encodes the image for the helper; only non-zero blocks travel, since a new volume reads as zeros. */
export async function encodeStagedImage(image: DiskImage): Promise<StagedImage> {
  const gzip = createGzip();
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  const finished = new Promise<void>((resolve, reject) => {
    gzip.on('end', resolve);
    gzip.on('error', reject);
  });
  const lines: string[] = [];
  for (const block of image.nonZeroBlocks(EBS_SNAPSHOT_BLOCK_BYTES)) {
    lines.push(`${block.index} ${createHash('sha256').update(block.data).digest('hex')}`);
    if (!gzip.write(block.data)) {
      await new Promise((resolve) => gzip.once('drain', resolve));
    }
  }
  gzip.end();
  await finished;
  const header = `${MANIFEST_MAGIC} volume-bytes=${image.sizeBytes} block-bytes=${EBS_SNAPSHOT_BLOCK_BYTES} blocks=${lines.length}`;
  return { blocksGz: Buffer.concat(chunks), manifest: [header, ...lines, ''].join('\n'), blockCount: lines.length };
}

/** Puts blocks.gz and manifest.txt under builds/<buildId>/ of the staging bucket. */
export async function stageImage(ctx: StagingContext, image: DiskImage): Promise<void> {
  const staged = await encodeStagedImage(image);
  const keys = stagingKeys(ctx.buildId);
  const bucket = ctx.spec.stagingBucket!;
  await withRetry('s3:PutObject blocks.gz', () =>
    ctx.s3.send(new PutObjectCommand({ Bucket: bucket, Key: keys.blocks, Body: staged.blocksGz, ContentType: 'application/gzip' })),
  );
  await withRetry('s3:PutObject manifest.txt', () =>
    ctx.s3.send(new PutObjectCommand({ Bucket: bucket, Key: keys.manifest, Body: staged.manifest, ContentType: 'text/plain' })),
  );
  ctx.log.step('stage-image', { bucket, blocks: staged.blockCount, gzipBytes: staged.blocksGz.length });
}

/** Deletes the staged objects (a missing object is no error in S3; a missing bucket means they are gone too). */
export async function deleteStagedImage(s3: S3Client, bucket: string | undefined, buildId: string): Promise<void> {
  if (!bucket) {
    return;
  }
  for (const key of Object.values(stagingKeys(buildId))) {
    try {
      await withRetry('s3:DeleteObject', () => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
    } catch (err) {
      if ((err as Error).name === 'NoSuchBucket') {
        return;
      }
      throw err;
    }
  }
}
