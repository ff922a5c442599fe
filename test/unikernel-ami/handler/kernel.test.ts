/**
 * Step 1 of a build against a mocked S3 (aws-sdk-client-mock) that answers ranged GetObject as S3
 * does (206 with Content-Range, If-Match on the ETag, InvalidRange for an empty object), with
 * streaming bodies: the kernel object is inspected from a few ranges, and its disk's blocks are
 * made from a stream of it, never from the object held whole.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { Readable } from 'stream';
import { gzipSync } from 'zlib';
import { GetObjectCommand, GetObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { buildDiskImage, DiskLayout } from '../../../lib/disk-image';
import { KernelNotBootableError } from '../../../lib/kernel-inspection';
import { KernelArchitecture } from '../../../lib/pv-grub';
import { prepareDiskImage } from '../../../lib/unikernel-ami/handler/kernel';
import { BuildSpec, NO_SHARING } from '../../../lib/unikernel-ami/handler/properties';
import { AmiRemovalKind, BuildStrategyKind, DeregistrationProtectionKind } from '../../../lib/unikernel-ami/types';
import { blockDigests, fakeKernel } from '../../disk-image/tools';

const MIB = 2 ** 20;
const HELLO = readFileSync(join(__dirname, '..', '..', '..', 'examples', 'hello', 'hello.xen'));
const I386_KERNEL = readFileSync(join(__dirname, '..', '..', 'fixtures', 'kernels', 'pv-i386.elf'));
const ETAG = '"5d41402abc4b2a76b9719d911017c592"';

const s3Mock = mockClient(S3Client);
const s3 = new S3Client({ region: 'us-east-1' });

/** The example kernel padded with pseudo-random bytes: its headers and notes are in its first 14 KB. */
function paddedKernel(bytes: number): Buffer {
  return fakeKernel(bytes, { header: HELLO, zeroStretch: false });
}

function spec(overrides: Partial<BuildSpec> = {}): BuildSpec {
  return {
    kernelBucket: 'kernels',
    kernelKey: 'hello.xen',
    name: 'hello',
    kernelArgs: 'console=hvc0',
    layout: DiskLayout.WHOLE_VOLUME,
    volumeSizeGiB: 1,
    architecture: KernelArchitecture.X86_64,
    kernelId: 'aki-5c21674b',
    encrypted: false,
    removal: AmiRemovalKind.DESTROY,
    strategy: BuildStrategyKind.EBS_DIRECT,
    userTags: {},
    imageNamePrefix: 'hello',
    sharing: NO_SHARING,
    protection: DeregistrationProtectionKind.OFF,
    ...overrides,
  };
}

interface ServedObject {
  /** Bytes sent in GetObject bodies, all requests together. */
  bytesServed: number;
  requests: GetObjectCommandInput[];
}

/**
 * Serves `kernel` as S3 serves an object: ranges answered with 206 and Content-Range, bodies as
 * streams of 64 KiB chunks, If-Match checked against the ETag. `breakAt` makes the first stream
 * that reaches that byte fail there with a reset connection.
 */
function serve(kernel: Buffer, options: { ignoreRange?: boolean; breakAt?: number } = {}): ServedObject {
  const served: ServedObject = { bytesServed: 0, requests: [] };
  let broken = false;
  s3Mock.on(GetObjectCommand).callsFake((input: GetObjectCommandInput) => {
    served.requests.push(input);
    if (input.IfMatch !== undefined && input.IfMatch !== ETAG) {
      throw Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? '');
    if (range && !options.ignoreRange && kernel.length === 0) {
      throw Object.assign(new Error('The requested range is not satisfiable'), { name: 'InvalidRange', $metadata: { httpStatusCode: 416 } });
    }
    const start = range && !options.ignoreRange ? Number(range[1]) : 0;
    const end = range && !options.ignoreRange ? Math.min(kernel.length, Number(range[2]) + 1) : kernel.length;
    async function* body() {
      for (let at = start; at < end; at += 64 * 1024) {
        const chunk = kernel.subarray(at, Math.min(end, at + 64 * 1024));
        if (options.breakAt !== undefined && !broken && at + chunk.length > options.breakAt) {
          broken = true;
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        }
        served.bytesServed += chunk.length;
        yield chunk;
      }
    }
    return {
      Body: Readable.from(body()) as never,
      ETag: ETAG,
      ContentLength: end - start,
      ...(range && !options.ignoreRange ? { ContentRange: `bytes ${start}-${end - 1}/${kernel.length}` } : {}),
    };
  });
  return served;
}

beforeEach(() => s3Mock.reset());

describe('prepareDiskImage', () => {
  test('a 64 MiB kernel is inspected from a few ranges; its blocks, streamed once, are the image buildDiskImage makes', async () => {
    // GIVEN
    const kernel = paddedKernel(64 * MIB);
    const served = serve(kernel);

    // WHEN
    const image = await prepareDiskImage(s3, spec());

    // THEN inspection read two 64 KiB ranges at most, pinned to the ETag it first saw
    expect(served.bytesServed).toBeLessThanOrEqual(128 * 1024);
    expect(image.inspection).toMatchObject({ bootable: true, architecture: KernelArchitecture.X86_64 });
    expect(image.plan.kernelBytes).toBe(kernel.length);
    expect(served.requests.slice(1).every((request) => request.IfMatch === ETAG)).toBe(true);

    // WHEN the blocks are taken, THEN they are those of the in-memory image, and the object was streamed once more
    const before = served.bytesServed;
    const expected = buildDiskImage({ kernel, name: 'hello', kernelArgs: 'console=hvc0', volumeSizeGiB: 1 });
    expect(await blockDigests(image.nonZeroBlocks())).toEqual(await blockDigests(expected.nonZeroBlocks()));
    expect(served.bytesServed - before).toBe(kernel.length);
  });

  test('a versioned kernel is read by its version on every request', async () => {
    const served = serve(paddedKernel(3 * MIB));
    const image = await prepareDiskImage(s3, spec({ kernelObjectVersion: 'v7' }));
    await blockDigests(image.nonZeroBlocks());
    expect(served.requests.length).toBeGreaterThan(1);
    expect(served.requests.every((request) => request.VersionId === 'v7' && request.IfMatch === undefined)).toBe(true);
  });

  test('a stream that breaks is resumed where it stopped, and the blocks are still right', async () => {
    const kernel = paddedKernel(5 * MIB);
    const served = serve(kernel, { breakAt: 3 * MIB + 1000 });
    const image = await prepareDiskImage(s3, spec());

    const streamed = await blockDigests(image.nonZeroBlocks());

    expect(streamed).toEqual(await blockDigests(buildDiskImage({ kernel, name: 'hello', kernelArgs: 'console=hvc0' }).nonZeroBlocks()));
    const last = served.requests[served.requests.length - 1];
    expect(last.Range).toMatch(/^bytes=3\d{6}-5242879$/);
  });

  test('a kernel replaced while it is read fails the build, naming the object', async () => {
    const kernel = paddedKernel(2 * MIB);
    serve(kernel);
    const image = await prepareDiskImage(s3, spec());
    s3Mock.reset();
    s3Mock.on(GetObjectCommand).rejects(Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), { name: 'PreconditionFailed' }));

    await expect(blockDigests(image.nonZeroBlocks())).rejects.toThrow(/s3:GetObject s3:\/\/kernels\/hello\.xen failed: At least one of the pre-conditions/);
  });

  test('a gzip kernel missing its last bytes is refused before anything is built', async () => {
    const gz = gzipSync(paddedKernel(2 * MIB));
    serve(gz.subarray(0, gz.length - 3));
    await expect(prepareDiskImage(s3, spec())).rejects.toThrow(KernelNotBootableError);
    await expect(prepareDiskImage(s3, spec())).rejects.toThrow(/gzip data is corrupt or truncated: it ends 5 bytes into the 8-byte trailer/);
  });

  test('an intact gzip kernel is accepted and written as is', async () => {
    const gz = gzipSync(paddedKernel(2 * MIB));
    serve(gz);
    const image = await prepareDiskImage(s3, spec());
    expect(image.inspection).toMatchObject({ bootable: true, compressed: true });
    expect(await blockDigests(image.nonZeroBlocks())).toEqual(await blockDigests(buildDiskImage({ kernel: gz, name: 'hello', kernelArgs: 'console=hvc0' }).nonZeroBlocks()));
  });

  test('an empty object is refused as an empty kernel', async () => {
    serve(Buffer.alloc(0));
    await expect(prepareDiskImage(s3, spec())).rejects.toThrow(/kernel file is empty \(0 bytes\)/);
  });

  test('a kernel of the other architecture is refused, saying which to set', async () => {
    serve(I386_KERNEL);
    await expect(prepareDiskImage(s3, spec())).rejects.toThrow(/is ELF32 i386 \(i386\), but the AMI is to be x86_64.*Set the architecture to i386/);
  });

  test('a server that ignores Range sends the object once, and it is served from what came', async () => {
    const kernel = paddedKernel(3 * MIB);
    const served = serve(kernel, { ignoreRange: true });
    const image = await prepareDiskImage(s3, spec());
    expect(await blockDigests(image.nonZeroBlocks())).toEqual(await blockDigests(buildDiskImage({ kernel, name: 'hello', kernelArgs: 'console=hvc0' }).nonZeroBlocks()));
    expect(served.requests).toHaveLength(1);
  });
});
