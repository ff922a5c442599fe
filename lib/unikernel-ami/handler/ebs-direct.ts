/**
 * Writes a disk image straight into a new EBS snapshot with the EBS direct APIs
 * (StartSnapshot, PutSnapshotBlock, CompleteSnapshot): no helper instance, no volume.
 *
 * AWS facts relied on (EC2 user guide, "EBS direct APIs"): snapshots are written in 512 KiB
 * blocks; blocks never written read as zeros, so all-zero blocks are not sent; each block carries a
 * base64 SHA-256 checksum; CompleteSnapshot may verify a LINEAR aggregate checksum, the SHA-256 of
 * the raw per-block digests in block-index order (as awslabs/coldsnap computes it).
 *
 * A snapshot this attempt did not complete itself (a repeated attempt of the same build found it
 * completed, or EC2 answered `completed` before any block was written) is checked before it is
 * used: ListSnapshotBlocks (every page) must list exactly the blocks the disk image writes, and
 * GetSnapshotBlock must read back a sample of them with the image's checksums.
 */
import { createHash } from 'crypto';
import {
  ChecksumAggregationMethod,
  ChecksumAlgorithm,
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  Status,
} from '@aws-sdk/client-ebs';
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { DiskBlock } from '../../disk-image';
import { EBS_SNAPSHOT_BLOCK_BYTES } from '../../pv-grub';
import { clock, invocationTimeLeft } from './clock';
import { isNotFound } from './image';
import { StepLog } from './log';
import { afterCreateRetry, isRetryableError, RetryOptions, withRetry } from './retry';

/** What the upload needs of a disk image: a DiskImage in memory, or one streamed from the kernel object. */
export interface DirectUploadImage {
  readonly sizeBytes: number;
  /** The non-zero blocks in ascending index, made as they are taken (so only the blocks in flight are in memory). */
  nonZeroBlocks(blockSize?: number): Iterable<DiskBlock> | AsyncIterable<DiskBlock>;
}

export interface DirectUploadOptions {
  /** The disk image to write. */
  readonly image: DirectUploadImage;
  /** The build id; the StartSnapshot client token is derived from it, so a retried build reuses its snapshot. */
  readonly buildId: string;
  /** Size of the snapshot (and of volumes made from it) in GiB. */
  readonly volumeSizeGiB: number;
  /** Tags of the snapshot, including the build's own tags. */
  readonly tags: { Key: string; Value: string }[];
  /** Whether to encrypt the snapshot. */
  readonly encrypted: boolean;
  /** KMS key for encryption; absent for the AWS managed key. */
  readonly kmsKeyArn?: string;
  /** Description of the snapshot. */
  readonly description: string;
  /** PutSnapshotBlock requests in flight at once. @default 16 */
  readonly concurrency?: number;
  /** StartSnapshot Timeout in minutes. @default 60 */
  readonly timeoutMinutes?: number;
  /** Retry settings for every EBS call (tests inject `sleep`). @default - the retry module's defaults, with block attempts raised to ride out the not-found window */
  readonly retry?: RetryOptions;
  /** Where the steps are logged; pass the handler's own to share its elapsed time. @default - a new StepLog for buildId */
  readonly log?: StepLog;
}

export interface DirectUploadResult {
  readonly snapshotId: string;
  /** PutSnapshotBlock requests that succeeded (the snapshot's changed blocks). */
  readonly blocksSent: number;
  /** Bytes of block data in those requests. */
  readonly bytesSent: number;
  /** StartSnapshot, PutSnapshotBlock and CompleteSnapshot attempts, retries included. */
  readonly apiCalls: number;
  /** The blocks the completed snapshot holds: those sent, or those listed when it was found completed. */
  readonly snapshotBlocks: number;
}

/** The upload failed after the snapshot was started: the caller removes the snapshot by its id. */
export class DirectUploadError extends Error {
  constructor(message: string, readonly snapshotId: string, readonly blockIndex?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DirectUploadError';
  }
}

/** A completed snapshot this attempt did not complete does not hold the disk image. */
export class SnapshotMismatchError extends DirectUploadError {
  constructor(message: string, snapshotId: string) {
    super(message, snapshotId);
    this.name = 'SnapshotMismatchError';
  }
}

/**
 * Blocks read back with GetSnapshotBlock from a snapshot this attempt did not complete: every block
 * of an image of up to this many (a unikernel's image is a few), else this many spread over it.
 */
export const VERIFY_SAMPLE_BLOCKS = 16;
/** ListSnapshotBlocks' largest page (API reference: MaxResults 100 to 10000). */
const LIST_BLOCKS_PAGE = 10_000;

/**
 * 16 requests in flight keep a Lambda's network busy while holding only 8 MiB of blocks, far
 * below the account's PutSnapshotBlock limit of about 1000 requests per second.
 */
export const DEFAULT_CONCURRENCY = 16;

/**
 * AWS cancels a pending snapshot that sees no writes (or no CompleteSnapshot) for Timeout minutes.
 * 60 outlasts the 15-minute onEvent Lambda, so a live upload is never cancelled, and matches
 * CloudFormation's one-hour custom-resource limit, so a snapshot abandoned by a killed Lambda whose
 * DeleteSnapshot never ran is gone by the time the stack operation has given up on it.
 */
export const DEFAULT_TIMEOUT_MINUTES = 60;

/** StartSnapshot accepts a Timeout of 10 to 4320 minutes. */
const TIMEOUT_MINUTES_RANGE = { min: 10, max: 4320 };
/** StartSnapshot accepts a VolumeSize of 1 to 65536 GiB. */
const VOLUME_SIZE_GIB_RANGE = { min: 1, max: 65536 };
const GIB = 1024 ** 3;

/**
 * Right after StartSnapshot, PutSnapshotBlock may answer for some seconds that the snapshot does
 * not exist (coldsnap needed up to about two minutes in its tests): a block is retried for three
 * minutes before it is given up.
 */
const BLOCK_RETRY: RetryOptions = { attempts: 100, baseDelayMs: 500, maxDelayMs: 20_000, maxElapsedMs: 3 * 60_000 };

/** The raw SHA-256 digest of a block. */
export function blockDigest(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** The PutSnapshotBlock Checksum of a block: base64 of its SHA-256. */
export function blockChecksum(data: Uint8Array): string {
  return blockDigest(data).toString('base64');
}

/** The CompleteSnapshot LINEAR checksum: base64 SHA-256 over the raw block digests, given in block-index order. */
export function aggregateChecksum(digests: Buffer[]): string {
  const hash = createHash('sha256');
  for (const digest of digests) {
    hash.update(digest);
  }
  return hash.digest('base64');
}

/** The StartSnapshot client token of a build: the same build id always asks for the same snapshot. */
export function snapshotClientToken(buildId: string): string {
  return `${buildId}-ebs-direct`;
}

/**
 * Errors after which a PutSnapshotBlock is worth repeating: throttling and server errors, and the
 * brief window after StartSnapshot in which the new snapshot is not yet visible to block writes.
 */
export function isRetryableBlockError(err: unknown): boolean {
  return isRetryableError(err) || isSnapshotNotYetVisible(err);
}

function isSnapshotNotYetVisible(err: unknown): boolean {
  const { name, Reason } = (err ?? {}) as { name?: string; Reason?: string };
  return (name === 'ResourceNotFoundException' || name === 'ValidationException') && Reason === 'SNAPSHOT_NOT_FOUND';
}

/** Writes the image's non-zero blocks into a new snapshot and completes it. */
export async function uploadSnapshotDirect(ebs: EBSClient, ec2: EC2Client, options: DirectUploadOptions): Promise<DirectUploadResult> {
  validateOptions(options);
  const { buildId } = options;
  const log = options.log ?? new StepLog(buildId);
  let apiCalls = 0;

  const start = await withRetry('ebs:StartSnapshot', () => {
    apiCalls++;
    return ebs.send(new StartSnapshotCommand({
      VolumeSize: options.volumeSizeGiB,
      ClientToken: snapshotClientToken(buildId),
      Tags: options.tags,
      Description: options.description,
      Timeout: options.timeoutMinutes ?? DEFAULT_TIMEOUT_MINUTES,
      ...(options.encrypted ? { Encrypted: true, KmsKeyArn: options.kmsKeyArn } : {}),
    }));
  }, options.retry);
  const snapshotId = start.SnapshotId;
  if (!snapshotId) {
    throw new Error(`StartSnapshot for build ${buildId} returned no SnapshotId; retry the deployment.`);
  }
  log.step('ebs-direct:start-snapshot', { snapshotId, status: start.Status });
  // The role may write only into a snapshot with our tags; right after StartSnapshot, IAM may not
  // see them yet and answer AccessDenied: retried while the snapshot is young (retry.ts), after that
  // a denial fails at once.
  const startedAt = clock().now();
  const isRetryableWrite = (err: unknown) => isRetryableBlockError(err) || (afterCreateRetry(startedAt, clock().now()).isRetryable?.(err) ?? false);

  // A repeated StartSnapshot (same client token: a retried build) returns the ORIGINAL response,
  // whose Status is the one the snapshot had then ("Ensure idempotency in StartSnapshot API
  // requests"). What the snapshot is now, EC2 says: a completed one must not be written again.
  const completedBefore = async (): Promise<DirectUploadResult> => {
    const snapshotBlocks = await verifySnapshotBlocks(ebs, snapshotId, options);
    log.step('ebs-direct:already-completed', { snapshotId, snapshotBlocks });
    return { snapshotId, blocksSent: 0, bytesSent: 0, apiCalls, snapshotBlocks };
  };
  try {
    const now = await snapshotState(ec2, snapshotId, options.retry);
    if (now === Status.COMPLETED) {
      return await completedBefore();
    }
    if (now === Status.ERROR || start.Status === Status.ERROR) {
      throw new DirectUploadError(`Snapshot ${snapshotId} of build ${buildId} is in the error state.`, snapshotId);
    }
    const blocks = await putBlocks(ebs, snapshotId, options, () => apiCalls++, isRetryableWrite, (written) => log.stage('blocks-written', { snapshotId, blocks: written }));
    log.step('ebs-direct:put-blocks', { snapshotId, blocksSent: blocks.sent, bytesSent: blocks.bytes, apiCalls });
    log.stage('blocks-written', { snapshotId, blocks: blocks.sent, totalBlocks: blocks.sent });

    await withRetry('ebs:CompleteSnapshot', () => {
      apiCalls++;
      return ebs.send(new CompleteSnapshotCommand({
        SnapshotId: snapshotId,
        ChangedBlocksCount: blocks.sent,
        Checksum: aggregateChecksum(blocks.digestsInIndexOrder),
        ChecksumAlgorithm: ChecksumAlgorithm.CHECKSUM_ALGORITHM_SHA256,
        ChecksumAggregationMethod: ChecksumAggregationMethod.CHECKSUM_AGGREGATION_LINEAR,
      }));
      // The snapshot may still be unknown to EBS right after StartSnapshot, as for the blocks.
    }, { ...BLOCK_RETRY, isRetryable: isRetryableWrite, ...options.retry }).catch((err) => {
      throw new DirectUploadError(`CompleteSnapshot of snapshot ${snapshotId} (build ${buildId}) failed: ${describe(err)}`, snapshotId, undefined, { cause: err });
    });
    log.step('ebs-direct:complete-snapshot', { snapshotId, apiCalls });
    return { snapshotId, blocksSent: blocks.sent, bytesSent: blocks.bytes, apiCalls, snapshotBlocks: blocks.sent };
  } catch (err) {
    if (err instanceof SnapshotMismatchError) {
      throw err;
    }
    // EC2 may not have shown a snapshot that an earlier attempt completed, or another delivery of
    // the same event may be completing it (its CompleteSnapshot refuses this attempt's writes): if
    // it is completed now, or soon, the writes may have been refused only because it was; it is
    // used if it holds the image.
    if ((await stateOncePending(ec2, snapshotId, options.retry).catch(() => undefined)) === Status.COMPLETED) {
      return completedBefore();
    }
    // The caller removes the snapshot by this id (the StartSnapshot Timeout cancels it otherwise).
    throw err instanceof DirectUploadError
      ? err
      : new DirectUploadError(`The upload to snapshot ${snapshotId} (build ${buildId}) failed: ${describe(err)}`, snapshotId, undefined, { cause: err });
  }
}

/** The snapshot's state as EC2 shows it now; undefined while EC2 does not know the new snapshot yet. */
async function snapshotState(ec2: EC2Client, snapshotId: string, retry?: RetryOptions): Promise<string | undefined> {
  try {
    const response = await withRetry('ec2:DescribeSnapshots', () => ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })), retry);
    return response.Snapshots?.[0]?.State;
  } catch (err) {
    if (isNotFound(err)) {
      return undefined;
    }
    throw err;
  }
}

/**
 * Checks a completed snapshot this attempt did not complete against the disk image: the indexes
 * ListSnapshotBlocks lists (every page) must be exactly the image's non-zero blocks, and a sample
 * read back with GetSnapshotBlock must have the image's SHA-256.
 * @returns the number of blocks the snapshot holds
 * @throws SnapshotMismatchError when they differ
 */
export async function verifySnapshotBlocks(ebs: EBSClient, snapshotId: string, options: Pick<DirectUploadOptions, 'image' | 'buildId' | 'retry'>): Promise<number> {
  const planned = new Map<number, Buffer>();
  const source = options.image.nonZeroBlocks(EBS_SNAPSHOT_BLOCK_BYTES);
  for await (const block of source as AsyncIterable<DiskBlock>) {
    planned.set(block.index, blockDigest(block.data));
  }
  const tokens = new Map<number, string>();
  let nextToken: string | undefined;
  do {
    const current = nextToken;
    const page = await withRetry('ebs:ListSnapshotBlocks', () =>
      ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, MaxResults: LIST_BLOCKS_PAGE, NextToken: current })), options.retry);
    for (const block of page.Blocks ?? []) {
      tokens.set(block.BlockIndex!, block.BlockToken!);
    }
    nextToken = page.NextToken;
  } while (nextToken);
  const mismatch = (what: string) => new SnapshotMismatchError(
    `Snapshot ${snapshotId} of build ${options.buildId} is completed but does not hold the disk image (${what}); this attempt did not ` +
    'complete it (an earlier attempt did, or EC2 answered completed early). Redeploy to start a new build.', snapshotId);
  const missing = [...planned.keys()].filter((index) => !tokens.has(index));
  const extra = [...tokens.keys()].filter((index) => !planned.has(index));
  if (missing.length > 0 || extra.length > 0) {
    throw mismatch(`it lists ${tokens.size} blocks, the image writes ${planned.size}: ${missing.length} missing` +
      `${missing.length > 0 ? ` (first ${missing.slice(0, 3).join(', ')})` : ''}, ${extra.length} not the image's`);
  }
  for (const index of sampleOf([...planned.keys()].sort((a, b) => a - b), VERIFY_SAMPLE_BLOCKS)) {
    const block = await withRetry(`ebs:GetSnapshotBlock ${index}`, () =>
      ebs.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockToken: tokens.get(index) })), options.retry);
    const data = await block.BlockData?.transformToByteArray();
    if (!data || !blockDigest(data).equals(planned.get(index)!)) {
      throw mismatch(`block ${index} reads back with another SHA-256 than the image's`);
    }
  }
  return tokens.size;
}

/** All of `items` if there are at most `count`, else `count` of them spread evenly, the first and the last included. */
function sampleOf<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) {
    return [...items];
  }
  return [...new Set(Array.from({ length: count }, (_, i) => Math.round((i * (items.length - 1)) / (count - 1))))].map((i) => items[i]);
}

/** Pauses while a failed attempt's snapshot is pending, for another attempt that may be completing it. */
const PENDING_WAITS_MS = [5_000, 10_000, 15_000, 30_000];
/** Time kept back for the caller's cleanup of the snapshot. */
const PENDING_WAIT_MARGIN_MS = 3 * 60_000;

/** The snapshot's state once it is no longer pending, or pending when PENDING_WAITS_MS (or the invocation's time) ran out. */
async function stateOncePending(ec2: EC2Client, snapshotId: string, retry?: RetryOptions): Promise<string | undefined> {
  const sleep = retry?.sleep ?? ((ms: number) => clock().sleep(ms));
  for (let wait = 0; ; wait++) {
    const state = await snapshotState(ec2, snapshotId, retry);
    if (state !== Status.PENDING || wait >= PENDING_WAITS_MS.length || PENDING_WAITS_MS[wait] > invocationTimeLeft() - PENDING_WAIT_MARGIN_MS) {
      return state;
    }
    await sleep(PENDING_WAITS_MS[wait]);
  }
}

interface SentBlocks {
  readonly sent: number;
  readonly bytes: number;
  readonly digestsInIndexOrder: Buffer[];
}

/**
 * How often the upload logs the blocks written so far (a `blocks-written` stage, stages.ts): every
 * 64 MiB. The total is not known before the end: the blocks are made as they are sent.
 */
const BLOCK_PROGRESS_EVERY = 128;

/**
 * Sends the blocks with at most `concurrency` requests in flight. The workers pull from one lazy
 * iterator (for a streamed image, each pull reads the next blocks' worth of the kernel object), so
 * only the blocks being sent are in memory; they finish out of order, so digests are kept by
 * index and sorted at the end. A failure, of a request or of the block source (the kernel stream
 * broke, or the kernel was not what was laid out), stops the pulling; the requests in flight end
 * before it is thrown.
 */
async function putBlocks(ebs: EBSClient, snapshotId: string, options: DirectUploadOptions, countCall: () => void,
  isRetryable: (err: unknown) => boolean, reportWritten: (blocks: number) => void): Promise<SentBlocks> {
  const source = options.image.nonZeroBlocks(EBS_SNAPSHOT_BLOCK_BYTES);
  const blocks: Iterator<DiskBlock> | AsyncIterator<DiskBlock> = Symbol.asyncIterator in source
    ? (source as AsyncIterable<DiskBlock>)[Symbol.asyncIterator]()
    : (source as Iterable<DiskBlock>)[Symbol.iterator]();
  const digests = new Map<number, Buffer>();
  let bytes = 0;
  let failure: unknown;

  const worker = async (): Promise<void> => {
    while (!failure) {
      let next: IteratorResult<DiskBlock>;
      try {
        next = await blocks.next();
      } catch (err) {
        failure ??= err;
        return;
      }
      if (next.done) {
        return;
      }
      const { index, data } = next.value;
      const digest = blockDigest(data);
      try {
        await withRetry(`ebs:PutSnapshotBlock ${index}`, () => {
          countCall();
          return ebs.send(new PutSnapshotBlockCommand({
            SnapshotId: snapshotId,
            BlockIndex: index,
            BlockData: data,
            DataLength: data.length,
            Checksum: digest.toString('base64'),
            ChecksumAlgorithm: ChecksumAlgorithm.CHECKSUM_ALGORITHM_SHA256,
          }));
        }, { ...BLOCK_RETRY, isRetryable, ...options.retry });
      } catch (err) {
        failure ??= new DirectUploadError(
          `PutSnapshotBlock of block ${index} (bytes ${index * EBS_SNAPSHOT_BLOCK_BYTES}..${(index + 1) * EBS_SNAPSHOT_BLOCK_BYTES - 1}) `
          + `of snapshot ${snapshotId} (build ${options.buildId}) failed: ${describe(err)}`,
          snapshotId, index, { cause: err });
        return;
      }
      digests.set(index, digest);
      bytes += data.length;
      if (digests.size % BLOCK_PROGRESS_EVERY === 0) {
        reportWritten(digests.size);
      }
    }
  };

  await Promise.all(Array.from({ length: options.concurrency ?? DEFAULT_CONCURRENCY }, worker));
  if (failure) {
    await blocks.return?.(); // stops reading the kernel object
    throw failure;
  }
  const digestsInIndexOrder = [...digests.entries()].sort(([a], [b]) => a - b).map(([, digest]) => digest);
  return { sent: digests.size, bytes, digestsInIndexOrder };
}

function validateOptions(options: DirectUploadOptions): void {
  const { volumeSizeGiB, image } = options;
  if (!Number.isInteger(volumeSizeGiB) || volumeSizeGiB < VOLUME_SIZE_GIB_RANGE.min || volumeSizeGiB > VOLUME_SIZE_GIB_RANGE.max) {
    throw new Error(`volumeSizeGiB must be a whole number of GiB from ${VOLUME_SIZE_GIB_RANGE.min} to ${VOLUME_SIZE_GIB_RANGE.max} (the StartSnapshot limits); got ${volumeSizeGiB}.`);
  }
  if (image.sizeBytes > volumeSizeGiB * GIB) {
    throw new Error(`The disk image is ${image.sizeBytes} bytes, larger than the ${volumeSizeGiB} GiB snapshot; build the image for this volume size or raise volumeSizeGiB.`);
  }
  const timeout = options.timeoutMinutes ?? DEFAULT_TIMEOUT_MINUTES;
  if (!Number.isInteger(timeout) || timeout < TIMEOUT_MINUTES_RANGE.min || timeout > TIMEOUT_MINUTES_RANGE.max) {
    throw new Error(`timeoutMinutes must be a whole number from ${TIMEOUT_MINUTES_RANGE.min} to ${TIMEOUT_MINUTES_RANGE.max} (the StartSnapshot limits); got ${timeout}.`);
  }
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`concurrency must be a whole number of at least 1 (requests in flight); got ${concurrency}.`);
  }
  if (options.buildId === '') {
    throw new Error('buildId must not be empty: the StartSnapshot client token is derived from it.');
  }
  if (options.kmsKeyArn && !options.encrypted) {
    throw new Error(`kmsKeyArn ${options.kmsKeyArn} was given but encrypted is false; set encrypted to true to use the key, or drop the key.`);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
