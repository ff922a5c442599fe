/**
 * The child process of bench/handler.ts: runs the handler's onEvent for one Create against an
 * in-process FAKE of S3, EBS and EC2 (the clients' `send` is replaced; no request leaves the
 * process, so network time and throttling are NOT measured), then prints one JSON line with what
 * it measured. The fake holds nothing it is sent: it counts the bytes and drops them, and it makes
 * the kernel object's bytes on demand, so the child's peak RSS is the handler's.
 */
import { Readable } from 'stream';
import { readFileSync } from 'fs';
import { EXAMPLE_KERNEL, kernelBytesAt } from './common';

export interface Scenario {
  readonly strategy: 'ebs-direct' | 'helper-instance';
  readonly kernelBytes: number;
  readonly layout: 'whole' | 'mbr';
  readonly volumeSizeGiB: number;
}

export interface ChildResult {
  readonly ms: number;
  readonly maxRssKiB: number;
  readonly blocksSent: number;
  readonly bytesSent: number;
  readonly ebsCalls: number;
  readonly s3Calls: number;
  readonly s3BytesRead: number;
  readonly stagedBytes: number;
  readonly staged: boolean;
  readonly error?: string;
}

type Command = { constructor: { name: string }; input: Record<string, unknown> };
type Client = { send: (command: Command) => Promise<unknown> };

const BUCKET = 'bench-kernels';
const KEY = 'bench.xen';
const ETAG = '"0123456789abcdef0123456789abcdef"';
const STAGING_BUCKET = 'bench-staging';

class BenchStop extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchStop';
  }
}

/** The name of the command class, without the digits a bundler may append to keep names apart. */
function nameOf(command: Command): string {
  return command.constructor.name.replace(/\d+$/, '');
}

/** Counts a request body's bytes (a Buffer, a string or a stream) and drops them. */
async function drain(body: unknown): Promise<number> {
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof Uint8Array) return body.length;
  if (body && typeof (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
    let bytes = 0;
    for await (const chunk of body as AsyncIterable<Uint8Array>) bytes += chunk.length;
    return bytes;
  }
  throw new Error(`bench fake: cannot read a request body of type ${typeof body}`);
}

class Fake {
  blocksSent = 0;
  bytesSent = 0;
  ebsCalls = 0;
  s3Calls = 0;
  s3BytesRead = 0;
  stagedBytes = 0;
  staged = false;
  /** The parent passes the path: in the bundle, __dirname is the bundle's. */
  private readonly example = readFileSync(process.env.BENCH_EXAMPLE_KERNEL ?? EXAMPLE_KERNEL);

  constructor(private readonly kernelBytes: number) {}

  /** A streaming body of the kernel's bytes [start, end), made 64 KiB at a time as it is read. */
  private body(start: number, end: number): Readable & { transformToByteArray(): Promise<Uint8Array> } {
    let offset = start;
    const fake = this;
    const stream = new Readable({
      read() {
        if (offset >= end) {
          this.push(null);
          return;
        }
        const length = Math.min(64 * 1024, end - offset);
        fake.s3BytesRead += length;
        this.push(kernelBytesAt(fake.example, offset, length));
        offset += length;
      },
    });
    // What the SDK's stream mixin gives a body in Node: the whole object as one array.
    return Object.assign(stream, {
      async transformToByteArray(): Promise<Uint8Array> {
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      },
    });
  }

  async s3(command: Command): Promise<unknown> {
    this.s3Calls++;
    const input = command.input;
    switch (nameOf(command)) {
      case 'HeadObjectCommand':
        this.checkKernel(input);
        return { ContentLength: this.kernelBytes, ETag: ETAG };
      case 'GetObjectCommand': {
        this.checkKernel(input);
        const range = /^bytes=(\d+)-(\d*)$/.exec(String(input.Range ?? ''));
        if (!range) {
          return { Body: this.body(0, this.kernelBytes), ContentLength: this.kernelBytes, ETag: ETAG };
        }
        const start = Number(range[1]);
        const end = Math.min(this.kernelBytes, range[2] === '' ? this.kernelBytes : Number(range[2]) + 1);
        return {
          Body: this.body(start, end),
          ContentLength: end - start,
          ContentRange: `bytes ${start}-${end - 1}/${this.kernelBytes}`,
          ETag: ETAG,
        };
      }
      case 'PutObjectCommand': {
        const bytes = await drain(input.Body);
        this.stagedBytes += bytes;
        if (String(input.Key).endsWith('manifest.txt')) this.staged = true;
        return { ETag: '"put"' };
      }
      case 'CreateMultipartUploadCommand':
        return { UploadId: 'bench-upload' };
      case 'UploadPartCommand': {
        const bytes = await drain(input.Body);
        this.stagedBytes += bytes;
        return { ETag: `"part-${input.PartNumber}"` };
      }
      case 'CompleteMultipartUploadCommand':
      case 'AbortMultipartUploadCommand':
      case 'DeleteObjectCommand':
        return {};
      default:
        throw new Error(`bench fake: S3 ${nameOf(command)} is not faked`);
    }
  }

  private checkKernel(input: Record<string, unknown>): void {
    if (input.Bucket !== BUCKET || input.Key !== KEY) {
      throw Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' });
    }
    if (input.IfMatch !== undefined && input.IfMatch !== ETAG) {
      throw Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), { name: 'PreconditionFailed' });
    }
  }

  async ebs(command: Command): Promise<unknown> {
    this.ebsCalls++;
    const input = command.input;
    switch (nameOf(command)) {
      case 'StartSnapshotCommand':
        return { SnapshotId: 'snap-0bench', Status: 'pending' };
      case 'PutSnapshotBlockCommand':
        const bytes = await drain(input.BlockData); // counted after the await: requests run concurrently
        this.blocksSent++;
        this.bytesSent += bytes;
        return { Checksum: input.Checksum };
      case 'CompleteSnapshotCommand':
        return { Status: 'completed' };
      default:
        throw new Error(`bench fake: EBS ${nameOf(command)} is not faked`);
    }
  }

  /** The direct build makes no EC2 call when all goes well; the helper build is stopped at its first EC2 call, once staged. */
  async ec2(command: Command): Promise<unknown> {
    if (nameOf(command).startsWith('Describe')) return {};
    throw new BenchStop(`bench: stopped at EC2 ${nameOf(command)}`);
  }
}

export async function main(
  onEvent: (event: unknown) => Promise<unknown>,
  clients: { s3: Client; ebs: Client; ec2: Client; ssm: Client },
): Promise<void> {
  const scenario = JSON.parse(process.argv[2]) as Scenario;
  const fake = new Fake(scenario.kernelBytes);
  clients.s3.send = (command) => fake.s3(command);
  clients.ebs.send = (command) => fake.ebs(command);
  clients.ec2.send = (command) => fake.ec2(command);
  clients.ssm.send = async (command) => { throw new BenchStop(`bench: stopped at SSM ${nameOf(command)}`); };
  console.log = () => {}; // the handler's step log; the parent reads only the result line

  const properties = {
    KernelBucket: BUCKET,
    KernelKey: KEY,
    Name: 'bench',
    KernelArgs: '',
    Layout: scenario.layout,
    VolumeSizeGiB: String(scenario.volumeSizeGiB),
    Architecture: 'x86_64',
    KernelId: 'aki-5c21674b',
    Encrypted: 'false',
    RemovalPolicy: 'destroy',
    Strategy: scenario.strategy,
    Tags: {},
    ...(scenario.strategy === 'helper-instance'
      ? {
        StagingBucket: STAGING_BUCKET,
        Helper: { InstanceType: 't3.micro', SubnetId: 'subnet-0bench', SecurityGroupId: 'sg-0bench', InstanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/bench', ImageId: 'ami-0bench' },
      }
      : {}),
  };
  const event = {
    RequestType: 'Create',
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:bench',
    ResponseURL: 'https://example.invalid/',
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/Bench/00000000-0000-0000-0000-000000000000',
    RequestId: `bench-${Date.now()}`,
    LogicalResourceId: 'Bench',
    ResourceType: 'Custom::MirageUnikernelAmi',
    ResourceProperties: properties,
  };
  const started = process.hrtime.bigint();
  let error: string | undefined;
  try {
    await onEvent(event);
  } catch (err) {
    error = `${(err as Error).name}: ${(err as Error).message}`;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const result: ChildResult = {
    ms,
    maxRssKiB: process.resourceUsage().maxRSS,
    blocksSent: fake.blocksSent,
    bytesSent: fake.bytesSent,
    ebsCalls: fake.ebsCalls,
    s3Calls: fake.s3Calls,
    s3BytesRead: fake.s3BytesRead,
    stagedBytes: fake.stagedBytes,
    staged: fake.staged,
    error,
  };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}
