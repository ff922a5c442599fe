/**
 * Staging for the helper-instance strategy: the handler encodes the disk image's non-zero blocks
 * (gzip) with a manifest of their SHA-256 digests, and puts both in the staging bucket, where the
 * helper reads them (see helper-script.ts). The blocks are encoded and uploaded as they are made
 * from the kernel stream, in parts of a multipart upload: memory holds a few parts, whatever the
 * kernel's size.
 */
import { createHash } from 'crypto';
import { constants as zlibConstants, createGzip } from 'zlib';
import {
  AbortMultipartUploadCommand,
  CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { DiskBlock } from '../../disk-image';
import { EBS_SNAPSHOT_BLOCK_BYTES } from '../../pv-grub';
import { STAGING_PREFIX } from '../types';
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

/** What staging needs of a disk image: a DiskImage in memory, or one streamed from the kernel object. */
export interface StageableImage {
  readonly sizeBytes: number;
  nonZeroBlocks(blockSize?: number): Iterable<DiskBlock> | AsyncIterable<DiskBlock>;
}

export interface StagedImage {
  /** gzip of the non-zero 512 KiB blocks, in index order. */
  readonly blocksGz: Buffer;
  /** A header line, then `<index> <sha256 hex>` per block. */
  readonly manifest: string;
  readonly blockCount: number;
}

/** Where everything of one build goes in the staging bucket. */
export function buildPrefix(buildId: string): string {
  return `${STAGING_PREFIX}${buildId}/`;
}

export function stagingKeys(buildId: string) {
  const prefix = buildPrefix(buildId);
  return { blocks: `${prefix}blocks.gz`, manifest: `${prefix}manifest.txt` };
}

/**
 * Parts of 8 MiB, at most 2 uploading while the next fills: 24 MiB of memory, and 10,000 parts
 * (S3's limit) hold 80 GB, far beyond a 2 GiB kernel. S3 wants every part but the last to be 5 MiB
 * or more; a staged image smaller than one part is sent with one PutObject.
 */
const PART_BYTES = 8 * 2 ** 20;
const PARTS_IN_FLIGHT = 2;

interface EncodedBlocks {
  readonly manifest: string;
  readonly blockCount: number;
  readonly gzipBytes: number;
}

/**
 * Encodes the image for the helper; only non-zero blocks travel, since a new volume reads as zeros.
 * The gzip output goes to `sink` as it is made, which may take its time (backpressure). Level 1:
 * the compression only shortens the transfer, and higher levels take several times longer for a
 * few percent on a kernel's bulk.
 */
async function encodeBlocks(image: StageableImage, sink: (chunk: Buffer) => Promise<void>): Promise<EncodedBlocks> {
  const gzip = createGzip({ level: zlibConstants.Z_BEST_SPEED });
  let gzipBytes = 0;
  const draining = (async () => {
    for await (const chunk of gzip) {
      gzipBytes += (chunk as Buffer).length;
      await sink(chunk as Buffer);
    }
  })();
  const lines: string[] = [];
  try {
    for await (const block of image.nonZeroBlocks(EBS_SNAPSHOT_BLOCK_BYTES)) {
      lines.push(`${block.index} ${createHash('sha256').update(block.data).digest('hex')}`);
      if (!gzip.write(block.data)) {
        await Promise.race([new Promise((resolve) => gzip.once('drain', resolve)), draining]);
      }
    }
    gzip.end();
    await draining;
  } catch (err) {
    gzip.destroy();
    await draining.catch(() => undefined);
    throw err;
  }
  const header = `${MANIFEST_MAGIC} volume-bytes=${image.sizeBytes} block-bytes=${EBS_SNAPSHOT_BLOCK_BYTES} blocks=${lines.length}`;
  return { manifest: [header, ...lines, ''].join('\n'), blockCount: lines.length, gzipBytes };
}

/** Encodes the image into memory (what stageImage uploads, for tests and tools). */
export async function encodeStagedImage(image: StageableImage): Promise<StagedImage> {
  const chunks: Buffer[] = [];
  const encoded = await encodeBlocks(image, async (chunk) => {
    chunks.push(chunk);
  });
  return { blocksGz: Buffer.concat(chunks), manifest: encoded.manifest, blockCount: encoded.blockCount };
}

/**
 * Puts blocks.gz (streamed, as a multipart upload once it outgrows one part) and then manifest.txt
 * under builds/<buildId>/ of the staging bucket. When the blocks cannot all be staged (the kernel
 * stream breaks, or an upload fails), the multipart upload is aborted: no part is left behind.
 */
export async function stageImage(ctx: StagingContext, image: StageableImage): Promise<void> {
  const keys = stagingKeys(ctx.buildId);
  const bucket = ctx.spec.stagingBucket!;
  const upload = new StreamingUpload(ctx.s3, bucket, keys.blocks, 'application/gzip');
  let encoded: EncodedBlocks;
  try {
    encoded = await encodeBlocks(image, (chunk) => upload.write(chunk));
    await upload.complete();
  } catch (err) {
    await upload.abort(ctx.log);
    throw err;
  }
  await withRetry('s3:PutObject manifest.txt', () =>
    ctx.s3.send(new PutObjectCommand({ Bucket: bucket, Key: keys.manifest, Body: encoded.manifest, ContentType: 'text/plain' })),
  );
  ctx.log.step('stage-image', { bucket, blocks: encoded.blockCount, gzipBytes: encoded.gzipBytes, parts: upload.partCount });
  ctx.log.stage('staged', { blocks: encoded.blockCount, totalBlocks: encoded.blockCount });
}

/** An S3 object written as its bytes come: one PutObject if they fit one part, else a multipart upload. */
class StreamingUpload {
  partCount = 0;
  private part = Buffer.allocUnsafe(PART_BYTES);
  private filled = 0;
  private uploadId?: string;
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure?: unknown;

  /** The object's file name, for messages (as in 's3:PutObject blocks.gz failed: ...'). */
  private readonly name: string;

  constructor(private readonly s3: S3Client, private readonly bucket: string, private readonly key: string, private readonly contentType: string) {
    this.name = key.slice(key.lastIndexOf('/') + 1);
  }

  async write(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length;) {
      const take = Math.min(chunk.length - at, PART_BYTES - this.filled);
      chunk.copy(this.part, this.filled, at, at + take);
      this.filled += take;
      at += take;
      if (this.filled === PART_BYTES) {
        await this.sendPart();
      }
    }
  }

  async complete(): Promise<void> {
    if (this.uploadId === undefined) {
      const body = this.part.subarray(0, this.filled);
      await withRetry(`s3:PutObject ${this.name}`, () =>
        this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: body, ContentType: this.contentType })));
      return;
    }
    if (this.filled > 0) {
      await this.sendPart();
    }
    await this.settle();
    const uploadId = this.uploadId;
    await withRetry(`s3:CompleteMultipartUpload ${this.name}`, () => this.s3.send(new CompleteMultipartUploadCommand({
      Bucket: this.bucket, Key: this.key, UploadId: uploadId, MultipartUpload: { Parts: this.parts },
    })));
  }

  /** Best effort: what cannot be aborted here, the staging bucket's lifecycle rule removes. */
  async abort(log: StepLog): Promise<void> {
    if (this.uploadId === undefined) {
      return;
    }
    await Promise.allSettled(this.inFlight);
    const uploadId = this.uploadId;
    try {
      await withRetry(`s3:AbortMultipartUpload ${this.name}`, () =>
        this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: uploadId })));
      log.step('stage-image-aborted', { key: this.key, parts: this.partCount });
    } catch (err) {
      log.step('stage-image-abort-failed', { key: this.key, error: (err as Error).message });
    }
  }

  private async sendPart(): Promise<void> {
    if (this.uploadId === undefined) {
      const created = await withRetry(`s3:CreateMultipartUpload ${this.name}`, () =>
        this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, ContentType: this.contentType })));
      if (!created.UploadId) {
        throw new Error(`s3:CreateMultipartUpload ${this.key} returned no UploadId`);
      }
      this.uploadId = created.UploadId;
    }
    const uploadId = this.uploadId;
    const body = this.part.subarray(0, this.filled);
    const partNumber = ++this.partCount;
    this.part = Buffer.allocUnsafe(PART_BYTES);
    this.filled = 0;
    const sending: Promise<void> = withRetry(`s3:UploadPart ${partNumber} of ${this.name}`, () => this.s3.send(new UploadPartCommand({
      Bucket: this.bucket, Key: this.key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length,
    }))).then(
      (result) => {
        this.parts[partNumber - 1] = { ETag: result.ETag, PartNumber: partNumber };
      },
      (err) => {
        this.failure ??= err;
      },
    ).finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
    while (this.inFlight.size >= PARTS_IN_FLIGHT && this.failure === undefined) {
      await Promise.race(this.inFlight);
    }
    this.throwIfFailed();
  }

  private async settle(): Promise<void> {
    await Promise.all(this.inFlight);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) {
      throw this.failure;
    }
  }
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
