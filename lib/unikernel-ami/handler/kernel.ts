/**
 * Step 1 of a build: find the kernel object, refuse what PV-GRUB cannot boot, and lay out the disk.
 * Nothing here creates an AWS resource, and nothing holds the kernel: it is read by ranges for
 * inspection (a gzip kernel is streamed whole once, to check its CRC and length), and the disk's
 * blocks are made later from a stream of the object, as the upload asks for them.
 */
import { GetObjectCommand, GetObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { DiskBlock, DiskImagePlan, DiskLayout, planDiskImage, streamDiskBlocks } from '../../disk-image';
import { inspectKernelSource, KernelInspection, KernelNotBootableError, KernelSource } from '../../kernel-inspection';
import { BuildSpec } from './properties';
import { isRetryableError, withRetry } from './retry';

/** Ranged reads fetch this much at a time and keep the last few: a kernel's headers and notes take one or two. */
const READ_CHUNK_BYTES = 64 * 1024;
const CACHED_CHUNKS = 8;
/** A stream of the object that breaks (a reset connection) is resumed where it stopped this many times. */
const STREAM_RESUMES = 5;

/** The kernel object, read by ranges and streamed; every request asks for the same version of it. */
export class S3KernelObject implements KernelSource {
  /**
   * Opens the object with a first ranged read, which gives its size and ETag. A server that
   * ignores the Range header (HTTP allows it; S3 does not) sends the whole object, which is then
   * kept and served from memory.
   */
  static async open(s3: S3Client, spec: BuildSpec): Promise<S3KernelObject> {
    const object = new S3KernelObject(s3, spec);
    await object.readFirstChunk();
    return object;
  }

  sizeBytes = 0;
  private eTag?: string;
  private whole?: Uint8Array;
  private readonly chunks = new Map<number, Uint8Array>();

  private constructor(private readonly s3: S3Client, private readonly spec: BuildSpec) {}

  /** s3://bucket/key (version ...), for messages. */
  get where(): string {
    const { kernelBucket, kernelKey, kernelObjectVersion } = this.spec;
    return `s3://${kernelBucket}/${kernelKey}${kernelObjectVersion ? ` (version ${kernelObjectVersion})` : ''}`;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.sizeBytes, offset + length);
    if (this.whole || offset >= end) {
      return (this.whole ?? new Uint8Array(0)).subarray(offset, end);
    }
    const parts: Uint8Array[] = [];
    for (let chunk = Math.floor(offset / READ_CHUNK_BYTES); chunk * READ_CHUNK_BYTES < end; chunk++) {
      const bytes = await this.chunk(chunk);
      const chunkStart = chunk * READ_CHUNK_BYTES;
      parts.push(bytes.subarray(Math.max(0, offset - chunkStart), Math.min(bytes.length, end - chunkStart)));
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  async *stream(start: number, end: number): AsyncIterable<Uint8Array> {
    if (this.whole) {
      for (let at = start; at < end; at += 2 ** 20) {
        yield this.whole.subarray(at, Math.min(end, at + 2 ** 20));
      }
      return;
    }
    let at = start;
    for (let resumes = 0; at < end;) {
      const response = await this.get(at, end - 1);
      try {
        for await (const chunk of bodyChunks(response.Body)) {
          yield chunk;
          at += chunk.length;
        }
        if (at < end) {
          throw Object.assign(new Error(`the object's stream ended at byte ${at} of ${end}`), { code: 'ECONNRESET' });
        }
      } catch (err) {
        if (!isRetryableError(err) || ++resumes > STREAM_RESUMES) {
          throw new Error(`Reading ${this.where} failed at byte ${at}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
  }

  private async readFirstChunk(): Promise<void> {
    let response: GetObjectCommandOutput;
    try {
      response = await this.get(0, READ_CHUNK_BYTES - 1);
    } catch (err) {
      if ((err as Error).name === 'InvalidRange') {
        return; // S3's answer to a range of an empty object: inspection refuses it as empty
      }
      throw err;
    }
    this.eTag = response.ETag;
    const total = /^bytes \d+-\d+\/(\d+)$/.exec(response.ContentRange ?? '');
    const bytes = await bodyBytes(response.Body);
    if (total) {
      this.sizeBytes = Number(total[1]);
      this.remember(0, bytes);
    } else {
      this.whole = bytes;
      this.sizeBytes = bytes.length;
    }
  }

  private async chunk(index: number): Promise<Uint8Array> {
    let bytes = this.chunks.get(index);
    if (!bytes) {
      const start = index * READ_CHUNK_BYTES;
      bytes = await bodyBytes((await this.get(start, Math.min(this.sizeBytes, start + READ_CHUNK_BYTES) - 1)).Body);
      this.remember(index, bytes);
    }
    return bytes;
  }

  private remember(index: number, bytes: Uint8Array): void {
    this.chunks.set(index, bytes);
    if (this.chunks.size > CACHED_CHUNKS) {
      this.chunks.delete(this.chunks.keys().next().value!);
    }
  }

  /** GetObject of bytes [first, last], of the version given, else of the version first read (If-Match its ETag). */
  private get(first: number, last: number): Promise<GetObjectCommandOutput> {
    const { kernelBucket, kernelKey, kernelObjectVersion } = this.spec;
    return withRetry(`s3:GetObject ${this.where}`, () => this.s3.send(new GetObjectCommand({
      Bucket: kernelBucket,
      Key: kernelKey,
      VersionId: kernelObjectVersion,
      Range: `bytes=${first}-${last}`,
      ...(kernelObjectVersion === undefined && this.eTag ? { IfMatch: this.eTag } : {}),
    })));
  }
}

/** An SDK body in Node is a Readable (async iterable); anything else is read whole. */
async function* bodyChunks(body: GetObjectCommandOutput['Body']): AsyncIterable<Uint8Array> {
  if (!body) {
    throw new Error('s3:GetObject returned no body');
  }
  if (typeof (body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
    yield* body as unknown as AsyncIterable<Uint8Array>;
  } else {
    yield await body.transformToByteArray();
  }
}

async function bodyBytes(body: GetObjectCommandOutput['Body']): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of bodyChunks(body)) {
    parts.push(chunk);
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** The disk of a build: laid out, its blocks made from a stream of the kernel object when they are asked for. */
export interface StreamedDiskImage {
  readonly sizeBytes: number;
  readonly layout: DiskLayout;
  /** Exact text of /boot/grub/menu.lst. */
  readonly menuLst: string;
  readonly plan: DiskImagePlan;
  readonly inspection: KernelInspection;
  /** The non-zero blocks, in ascending index; reads the kernel object once, as they are taken. */
  nonZeroBlocks(blockSize?: number): AsyncIterable<DiskBlock>;
}

/**
 * Checks that PV-GRUB can boot the kernel and that its architecture is the AMI's (a 64-bit
 * PV-GRUB cannot start a 32-bit kernel, or the reverse), then lays out the disk.
 * @throws KernelNotBootableError, or an Error naming the architectures
 */
export async function prepareDiskImage(s3: S3Client, spec: BuildSpec): Promise<StreamedDiskImage> {
  const kernel = await S3KernelObject.open(s3, spec);
  const inspection = await inspectKernelSource(kernel);
  if (!inspection.bootable) {
    throw new KernelNotBootableError(inspection);
  }
  if (inspection.architecture !== undefined && inspection.architecture !== spec.architecture) {
    throw new Error(
      `The kernel s3://${spec.kernelBucket}/${spec.kernelKey} is ${inspection.format} (${inspection.architecture}), but the AMI is to be ` +
        `${spec.architecture} with the ${spec.architecture} PV-GRUB ${spec.kernelId}, which cannot start it. ` +
        `Set the architecture to ${inspection.architecture}, or give a ${spec.architecture} kernel.`,
    );
  }
  const plan = planDiskImage(kernel.sizeBytes, {
    name: spec.name,
    kernelArgs: spec.kernelArgs,
    layout: spec.layout,
    volumeSizeGiB: spec.volumeSizeGiB,
  });
  return {
    sizeBytes: plan.sizeBytes,
    layout: plan.layout,
    menuLst: plan.menuLst,
    plan,
    inspection,
    nonZeroBlocks: (blockSize) => streamDiskBlocks(plan, kernel.stream(0, kernel.sizeBytes), blockSize),
  };
}
