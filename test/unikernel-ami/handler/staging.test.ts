/**
 * Staging of the helper's image against a mocked S3 (aws-sdk-client-mock): blocks.gz is streamed,
 * in parts of a multipart upload once it outgrows one part, with a bounded number of parts in
 * flight; a failure aborts the upload. What was staged is gunzipped and compared with the image.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { buildDiskImage, DiskImage } from '../../../lib/disk-image';
import { DiskLayout } from '../../../lib/disk-image';
import { KernelArchitecture } from '../../../lib/pv-grub';
import { StepLog } from '../../../lib/unikernel-ami/handler/log';
import { BuildSpec, NO_SHARING } from '../../../lib/unikernel-ami/handler/properties';
import { stageImage, stagingKeys } from '../../../lib/unikernel-ami/handler/staging';
import { AmiRemovalKind, BuildStrategyKind, DeregistrationProtectionKind } from '../../../lib/unikernel-ami/types';
import { fakeKernel } from '../../disk-image/tools';
import { expectStagedBlocks, streamed } from './images';

const MIB = 2 ** 20;
const BUILD_ID = 'mua-00112233445566ff';
const BUCKET = 'staging-bucket';

const s3Mock = mockClient(S3Client);
const s3 = new S3Client({ region: 'us-east-1' });

function spec(): BuildSpec {
  return {
    kernelBucket: 'kernels', kernelKey: 'hello.xen', name: 'hello', kernelArgs: '', layout: DiskLayout.WHOLE_VOLUME, volumeSizeGiB: 1,
    architecture: KernelArchitecture.X86_64, kernelId: 'aki-5c21674b', encrypted: false, removal: AmiRemovalKind.DESTROY,
    strategy: BuildStrategyKind.HELPER_INSTANCE, stagingBucket: BUCKET, userTags: {},
    imageNamePrefix: 'hello', sharing: NO_SHARING, protection: DeregistrationProtectionKind.OFF,
  };
}

function context() {
  const lines: string[] = [];
  return { lines, ctx: { s3, buildId: BUILD_ID, spec: spec(), log: new StepLog(BUILD_ID, Date.now, (line) => lines.push(line)) } };
}

/** Incompressible kernel bytes, so the staged gzip is about as large as the blocks. */
function randomKernel(bytes: number): Buffer {
  return fakeKernel(bytes, { zeroStretch: false });
}

let largeImage: DiskImage | undefined;

/** The image of a 30 MiB kernel (blocks.gz of four 8 MiB parts), built once, when first needed. */
function largeImage30MiB(): DiskImage {
  return largeImage ??= buildDiskImage({ kernel: randomKernel(30 * MIB), name: 'hello' });
}

beforeEach(() => s3Mock.reset());

test('a small image is staged with one PutObject per object', async () => {
  s3Mock.on(PutObjectCommand).resolves({});
  const image = buildDiskImage({ kernel: randomKernel(MIB), name: 'hello' });

  await stageImage(context().ctx, streamed(image));

  expect(s3Mock).not.toHaveReceivedCommand(CreateMultipartUploadCommand);
  const puts = s3Mock.commandCalls(PutObjectCommand).map((call) => call.args[0].input);
  expect(puts.map((put) => put.Key)).toEqual([stagingKeys(BUILD_ID).blocks, stagingKeys(BUILD_ID).manifest]);
  expectStagedBlocks(puts[0].Body as Buffer, puts[1].Body as string, image, 2 ** 30);
});

test('a large image is streamed in parts of 8 MiB, at most two uploading at once, and completed in order', async () => {
  // GIVEN parts whose upload is held until a second one is in flight (or 10 s have passed, which a
  // staging that uploads one part at a time then shows), then for 2 s more, in which a third part
  // would arrive if the staging allowed it. Not a fixed delay: making an 8 MiB part can take longer
  // than any fixed delay on a loaded machine, and then only one part was ever seen in flight.
  let inFlight = 0;
  let mostInFlight = 0;
  let releaseHeld: () => void = () => undefined;
  let secondInFlight = new Promise<void>((resolve) => (releaseHeld = resolve));
  s3Mock.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' });
  s3Mock.on(UploadPartCommand).callsFake(async (input) => {
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    if (inFlight >= 2) {
      releaseHeld();
    }
    await Promise.race([secondInFlight, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    inFlight--;
    if (inFlight === 0) {
      secondInFlight = new Promise<void>((resolve) => (releaseHeld = resolve));
    }
    return { ETag: `"etag-${input.PartNumber}"` };
  });
  s3Mock.on(CompleteMultipartUploadCommand).resolves({});
  s3Mock.on(PutObjectCommand).resolves({});
  const image = largeImage30MiB();

  // WHEN
  await stageImage(context().ctx, streamed(image));

  // THEN
  const parts = s3Mock.commandCalls(UploadPartCommand).map((call) => call.args[0].input);
  expect(parts.map((part) => part.PartNumber)).toEqual([1, 2, 3, 4]);
  parts.slice(0, -1).forEach((part) => expect((part.Body as Buffer).length).toBe(8 * MIB));
  expect(mostInFlight).toBe(2);
  expect(s3Mock).toHaveReceivedCommandWith(CompleteMultipartUploadCommand, {
    Bucket: BUCKET, Key: stagingKeys(BUILD_ID).blocks, UploadId: 'upload-1',
    MultipartUpload: { Parts: [1, 2, 3, 4].map((n) => ({ ETag: `"etag-${n}"`, PartNumber: n })) },
  });
  const manifest = s3Mock.commandCalls(PutObjectCommand).map((call) => call.args[0].input).find((put) => put.Key === stagingKeys(BUILD_ID).manifest)!;
  expectStagedBlocks(Buffer.concat(parts.map((part) => part.Body as Buffer)), manifest.Body as string, image, 2 ** 30);
});

test.each([
  ['a part fails to upload', undefined, true],
  ['the kernel stream breaks', 20, false],
])('when %s, the multipart upload is aborted, nothing is completed, no manifest is put', async (_, failAfter, partFails) => {
  s3Mock.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-2' });
  s3Mock.on(UploadPartCommand).callsFake(async (input) => {
    if (partFails && input.PartNumber === 2) {
      throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    }
    return { ETag: '"ok"' };
  });
  s3Mock.on(AbortMultipartUploadCommand).resolves({});
  const { ctx, lines } = context();
  const failure = 'Reading s3://kernels/hello.xen failed at byte 4194304: socket hang up';

  await expect(stageImage(ctx, streamed(largeImage30MiB(), { failAfter, failure }))).rejects.toThrow(partFails ? /s3:UploadPart 2 of blocks\.gz failed: Access Denied/ : /socket hang up/);

  expect(s3Mock).toHaveReceivedCommandWith(AbortMultipartUploadCommand, { Bucket: BUCKET, Key: stagingKeys(BUILD_ID).blocks, UploadId: 'upload-2' });
  expect(s3Mock).not.toHaveReceivedCommand(CompleteMultipartUploadCommand);
  expect(s3Mock).not.toHaveReceivedCommand(PutObjectCommand);
  expect(lines.some((line) => JSON.parse(line).step === 'stage-image-aborted')).toBe(true);
});
