/**
 * Step 1 of a build: fetch the kernel, refuse what PV-GRUB cannot boot, and lay out the disk.
 * Everything here happens before the build creates any AWS resource.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { buildDiskImage, DiskImage } from '../../disk-image';
import { assertBootableKernel } from '../../kernel-inspection';
import { BuildSpec } from './properties';
import { withRetry } from './retry';

/** Reads the kernel object (the given version, when the bucket is versioned). */
export async function readKernel(s3: S3Client, spec: BuildSpec): Promise<Uint8Array> {
  const where = `s3://${spec.kernelBucket}/${spec.kernelKey}${spec.kernelObjectVersion ? ` (version ${spec.kernelObjectVersion})` : ''}`;
  const response = await withRetry(`s3:GetObject ${where}`, () =>
    s3.send(new GetObjectCommand({ Bucket: spec.kernelBucket, Key: spec.kernelKey, VersionId: spec.kernelObjectVersion })),
  );
  if (!response.Body) {
    throw new Error(`s3:GetObject ${where} returned no body`);
  }
  return response.Body.transformToByteArray();
}

/**
 * Checks that PV-GRUB can boot the kernel and that its architecture is the AMI's (a 64-bit
 * PV-GRUB cannot start a 32-bit kernel, or the reverse), then lays out the disk.
 */
export function diskImageFor(kernel: Uint8Array, spec: BuildSpec): DiskImage {
  const inspection = assertBootableKernel(kernel);
  if (inspection.architecture !== undefined && inspection.architecture !== spec.architecture) {
    throw new Error(
      `The kernel s3://${spec.kernelBucket}/${spec.kernelKey} is ${inspection.format} (${inspection.architecture}), but the AMI is to be ` +
        `${spec.architecture} with the ${spec.architecture} PV-GRUB ${spec.kernelId}, which cannot start it. ` +
        `Set the architecture to ${inspection.architecture}, or give a ${spec.architecture} kernel.`,
    );
  }
  return buildDiskImage({
    kernel,
    name: spec.name,
    kernelArgs: spec.kernelArgs,
    layout: spec.layout,
    volumeSizeGiB: spec.volumeSizeGiB,
  });
}
