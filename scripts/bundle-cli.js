#!/usr/bin/env node
// Bundles the command line (bin/mirage-unikernel-ami.ts, lib/cli and the disk-image, kernel-inspection
// and xen code it uses, and the EC2 client of `console`) into one file, the package's `bin`. With the
// CLI's only third-party code inside the bundle, the package has no runtime dependencies beyond its
// peers (aws-cdk-lib, constructs): installing the construct no longer installs the AWS SDK.
//
// The same choices as the handler bundle (scripts/bundle-handler.js): minified, the SDK's ES module
// build tree-shaken with scripts/sdk-schema-keys.js, deterministic output; the hashbang of the entry
// point is kept. Licence comments of bundled code go to mirage-unikernel-ami.js.LEGAL.txt beside it
// (when there are any); THIRD-PARTY-NOTICES lists every bundled package with its licence.
'use strict';
const fs = require('fs');
const path = require('path');
const esbuild = require('esbuild');
const { nodeBundleOptions } = require('./node-bundle');
const { sdkSchemaKeys } = require('./sdk-schema-keys');

const root = path.resolve(__dirname, '..');
const outdir = path.join(root, 'dist', 'bin');

/**
 * The CLI loads each command with a dynamic import() (lib/cli/index.ts), so that `--help` does not
 * load the AWS SDK. esbuild evaluates such modules lazily, and a lazily evaluated module keeps every
 * export of what it imports: `import { EC2Client } from '@aws-sdk/client-ec2'` would keep the whole
 * EC2 API (the aggregated EC2 class names every operation; 1.3 MB of bundle instead of 0.4 MB).
 * This plugin gives the CLI's imports of each client listed here a module that re-exports only the
 * names listed, from the client's ES module files; a name the CLI starts importing and the list
 * lacks fails the build. A client not listed is bundled whole: correct, only larger.
 */
const SDK_EXPORTS_USED = {
  '@aws-sdk/client-ec2': {
    EC2Client: 'dist-es/EC2Client.js',
    CreateSnapshotCommand: 'dist-es/commands/CreateSnapshotCommand.js',
    CreateTagsCommand: 'dist-es/commands/CreateTagsCommand.js',
    DeleteSnapshotCommand: 'dist-es/commands/DeleteSnapshotCommand.js',
    DeleteTagsCommand: 'dist-es/commands/DeleteTagsCommand.js',
    DeleteVolumeCommand: 'dist-es/commands/DeleteVolumeCommand.js',
    DeregisterImageCommand: 'dist-es/commands/DeregisterImageCommand.js',
    DescribeImagesCommand: 'dist-es/commands/DescribeImagesCommand.js',
    DescribeInstancesCommand: 'dist-es/commands/DescribeInstancesCommand.js',
    DescribeSnapshotsCommand: 'dist-es/commands/DescribeSnapshotsCommand.js',
    DescribeVolumesCommand: 'dist-es/commands/DescribeVolumesCommand.js',
    RegisterImageCommand: 'dist-es/commands/RegisterImageCommand.js',
    RunInstancesCommand: 'dist-es/commands/RunInstancesCommand.js',
    TerminateInstancesCommand: 'dist-es/commands/TerminateInstancesCommand.js',
    GetConsoleOutputCommand: 'dist-es/commands/GetConsoleOutputCommand.js',
    // What builds --remove-failed reaches through the handler's cleanup.ts (distribution settings, the default-key check).
    DescribeImageAttributeCommand: 'dist-es/commands/DescribeImageAttributeCommand.js',
    DescribeSnapshotAttributeCommand: 'dist-es/commands/DescribeSnapshotAttributeCommand.js',
    DisableImageDeprecationCommand: 'dist-es/commands/DisableImageDeprecationCommand.js',
    DisableImageDeregistrationProtectionCommand: 'dist-es/commands/DisableImageDeregistrationProtectionCommand.js',
    EnableImageDeprecationCommand: 'dist-es/commands/EnableImageDeprecationCommand.js',
    EnableImageDeregistrationProtectionCommand: 'dist-es/commands/EnableImageDeregistrationProtectionCommand.js',
    GetEbsDefaultKmsKeyIdCommand: 'dist-es/commands/GetEbsDefaultKmsKeyIdCommand.js',
    GetEbsEncryptionByDefaultCommand: 'dist-es/commands/GetEbsEncryptionByDefaultCommand.js',
    GetImageBlockPublicAccessStateCommand: 'dist-es/commands/GetImageBlockPublicAccessStateCommand.js',
    ModifyImageAttributeCommand: 'dist-es/commands/ModifyImageAttributeCommand.js',
    ModifySnapshotAttributeCommand: 'dist-es/commands/ModifySnapshotAttributeCommand.js',
  },
  '@aws-sdk/client-cloudformation': {
    CloudFormationClient: 'dist-es/CloudFormationClient.js',
    DescribeStackEventsCommand: 'dist-es/commands/DescribeStackEventsCommand.js',
    DescribeStackResourceCommand: 'dist-es/commands/DescribeStackResourceCommand.js',
    DescribeStackResourcesCommand: 'dist-es/commands/DescribeStackResourcesCommand.js',
    DescribeStacksCommand: 'dist-es/commands/DescribeStacksCommand.js',
  },
  '@aws-sdk/client-cloudwatch-logs': {
    CloudWatchLogsClient: 'dist-es/CloudWatchLogsClient.js',
    FilterLogEventsCommand: 'dist-es/commands/FilterLogEventsCommand.js',
  },
  '@aws-sdk/client-s3': {
    S3Client: 'dist-es/S3Client.js',
    AbortMultipartUploadCommand: 'dist-es/commands/AbortMultipartUploadCommand.js',
    CompleteMultipartUploadCommand: 'dist-es/commands/CompleteMultipartUploadCommand.js',
    CreateMultipartUploadCommand: 'dist-es/commands/CreateMultipartUploadCommand.js',
    DeleteObjectCommand: 'dist-es/commands/DeleteObjectCommand.js',
    GetObjectCommand: 'dist-es/commands/GetObjectCommand.js',
    ListObjectsV2Command: 'dist-es/commands/ListObjectsV2Command.js',
    PutObjectCommand: 'dist-es/commands/PutObjectCommand.js',
    UploadPartCommand: 'dist-es/commands/UploadPartCommand.js',
  },
  '@aws-sdk/client-ssm': {
    SSMClient: 'dist-es/SSMClient.js',
    DescribeInstanceInformationCommand: 'dist-es/commands/DescribeInstanceInformationCommand.js',
    GetCommandInvocationCommand: 'dist-es/commands/GetCommandInvocationCommand.js',
    ListCommandInvocationsCommand: 'dist-es/commands/ListCommandInvocationsCommand.js',
    SendCommandCommand: 'dist-es/commands/SendCommandCommand.js',
  },
};
const NAMESPACE = 'sdk-exports-used';
const sdkExportsUsed = {
  name: NAMESPACE,
  setup(build) {
    const packages = Object.keys(SDK_EXPORTS_USED).map((name) => name.replace(/[/.-]/g, (c) => `\\${c}`));
    build.onResolve({ filter: new RegExp(`^(${packages.join('|')})$`) }, (args) => (
      args.namespace === NAMESPACE ? undefined : { path: args.path, namespace: NAMESPACE }
    ));
    build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({
      contents: Object.entries(SDK_EXPORTS_USED[args.path]).map(([name, file]) => `export { ${name} } from '${args.path}/${file}';`).join('\n'),
      resolveDir: root,
      loader: 'js',
    }));
  },
};

/** The esbuild options of the CLI bundle, written to `outfile`. */
function bundleOptions(outfile = path.join(outdir, 'mirage-unikernel-ami.js')) {
  return nodeBundleOptions({ entryPoint: 'bin/mirage-unikernel-ami.ts', outfile, plugins: [sdkSchemaKeys, sdkExportsUsed] });
}

module.exports = { bundleOptions };

if (require.main === module) {
  fs.rmSync(outdir, { recursive: true, force: true });
  esbuild.build(bundleOptions()).then(() => fs.chmodSync(path.join(outdir, 'mirage-unikernel-ami.js'), 0o755)).catch(() => process.exit(1));
}
