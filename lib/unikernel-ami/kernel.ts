import * as fs from 'fs';
import * as path from 'path';
import { Annotations, Token } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3_assets from 'aws-cdk-lib/aws-s3-assets';
import { Construct } from 'constructs';
import { inspectKernelFileSync, KernelInspection, KernelNotBootableError } from '../kernel-inspection';
import { KernelArchitecture } from '../pv-grub';
import { checkInput, validationError } from './errors';

/** Where a unikernel's kernel is, as its custom resource needs it. */
export interface UnikernelKernelConfig {
  /** Bucket that holds the kernel. */
  readonly bucket: s3.IBucket;
  /** Key of the kernel object. */
  readonly objectKey: string;
  /**
   * Version of the kernel object.
   * @default - the latest version
   */
  readonly objectVersion?: string;
  /**
   * The architecture that inspecting the kernel at synth time found.
   * @default - not inspected at synth time: the handler inspects the object before building anything
   */
  readonly architecture?: KernelArchitecture;
}

/** Limits the unikernel puts on its kernel. */
export interface UnikernelKernelBindOptions {
  /**
   * The largest kernel file the volume holds; a larger local file is refused before it is read.
   * @default - no limit at synth time
   */
  readonly maxSizeBytes?: number;
}

/** The Xen PV kernel of a unikernel (a MirageOS `*.xen` file, a Unikraft or Mini-OS image). */
export abstract class UnikernelKernel {
  /**
   * A kernel file on this machine. It is read and inspected at synth time (a kernel PV-GRUB cannot
   * boot stops the synth) and uploaded by `cdk deploy` as a file asset.
   */
  public static fromFile(filePath: string): UnikernelKernel {
    return new FileKernel(filePath);
  }

  /**
   * A kernel object already in S3. The handler inspects it at deploy time, before it creates anything.
   * @param objectVersion the version to use in a versioned bucket; by default the latest
   */
  public static fromBucket(bucket: s3.IBucket, key: string, objectVersion?: string): UnikernelKernel {
    return new BucketKernel(bucket, key, objectVersion);
  }

  /** Called once by the unikernel that uses this kernel. */
  public abstract bind(scope: Construct, options?: UnikernelKernelBindOptions): UnikernelKernelConfig;
}

class FileKernel extends UnikernelKernel {
  constructor(private readonly filePath: string) {
    super();
  }

  public bind(scope: Construct, options: UnikernelKernelBindOptions = {}): UnikernelKernelConfig {
    const file = path.resolve(this.filePath);
    const stat = explainFileErrors(scope, file, () => fs.statSync(file));
    if (options.maxSizeBytes !== undefined && stat.size > options.maxSizeBytes) {
      throw validationError(
        scope,
        `The kernel file ${file} is ${stat.size} bytes, but the volume holds a kernel of at most ${options.maxSizeBytes} bytes. ` +
        'Give a larger volumeSize.',
      );
    }
    const inspection = explainFileErrors(scope, file, () => inspectOnce(file, stat));
    if (!inspection.bootable) {
      throw validationError(scope, `The kernel file ${file} cannot be booted by AWS PV-GRUB: ${new KernelNotBootableError(inspection).message}`);
    }
    for (const warning of inspection.warnings) {
      Annotations.of(scope).addWarningV2('mirage-unikernel-ami:kernel-inspection', `${file}: ${warning}`);
    }
    const asset = new s3_assets.Asset(scope, 'Kernel', { path: file });
    return { bucket: asset.bucket, objectKey: asset.s3ObjectKey, architecture: inspection.architecture };
  }
}

/**
 * Inspections of local kernel files, by the file's identity and modification time: a file that
 * many unikernels of an app use is read and inspected once per synthesis, and again only if it
 * changed. Inspection reads the kernel's headers and notes, not its bulk (a gzip kernel is
 * inflated whole, in memory, to check its CRC and length).
 */
const inspections = new Map<string, KernelInspection>();

function inspectOnce(file: string, stat: fs.Stats): KernelInspection {
  const key = JSON.stringify([file, stat.dev, stat.ino, stat.size, stat.mtimeMs]);
  let inspection = inspections.get(key);
  if (!inspection) {
    inspection = inspectKernelFileSync(file);
    inspections.set(key, inspection);
  }
  return inspection;
}

function explainFileErrors<T>(scope: Construct, file: string, read: () => T): T {
  return checkInput(
    scope,
    read,
    (reason) => `Cannot read the unikernel kernel file ${file}: ${reason}. Give UnikernelKernel.fromFile the path of a Xen PV kernel file such as hello.xen.`,
  );
}

class BucketKernel extends UnikernelKernel {
  constructor(
    private readonly bucket: s3.IBucket,
    private readonly key: string,
    private readonly objectVersion?: string,
  ) {
    super();
    if (!Token.isUnresolved(key) && key.length === 0) {
      throw validationError(undefined, 'UnikernelKernel.fromBucket was given an empty object key: give the key of the kernel object, e.g. "kernels/hello.xen".');
    }
  }

  public bind(scope: Construct, _options?: UnikernelKernelBindOptions): UnikernelKernelConfig {
    if (this.objectVersion === undefined) {
      // The custom resource's properties name the bucket and key only: a new object under the same
      // key changes no property, so CloudFormation sends no update and the AMI keeps the old kernel.
      Annotations.of(scope).addWarningV2('mirage-unikernel-ami:kernel-without-version',
        `UnikernelKernel.fromBucket(${this.bucket.node.path}, ${JSON.stringify(this.key)}) names no objectVersion: overwriting that object never rebuilds the AMI, ` +
        'since no property of the stack changes. Give fromBucket the object\'s version (in a versioned bucket), or put each kernel under a new key.');
    }
    return { bucket: this.bucket, objectKey: this.key, objectVersion: this.objectVersion };
  }
}
