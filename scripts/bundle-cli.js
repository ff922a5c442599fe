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
const { sdkSchemaKeys } = require('./sdk-schema-keys');

const root = path.resolve(__dirname, '..');

/**
 * The CLI loads each command with a dynamic import() (lib/cli/index.ts), so that `--help` does not
 * load the EC2 client. esbuild evaluates such modules lazily, and a lazily evaluated module keeps
 * every export of what it imports: `import { EC2Client } from '@aws-sdk/client-ec2'` would keep the
 * whole EC2 API (the aggregated EC2 class names every operation). This plugin gives the CLI's
 * imports of the EC2 client a module that re-exports only what the CLI names, from the client's ES
 * module files; a name the CLI starts importing and this list lacks fails the build.
 */
const EC2_EXPORTS_USED = {
  EC2Client: 'dist-es/EC2Client.js',
  GetConsoleOutputCommand: 'dist-es/commands/GetConsoleOutputCommand.js',
};
const ec2ClientExportsUsed = {
  name: 'ec2-client-exports-used',
  setup(build) {
    build.onResolve({ filter: /^@aws-sdk\/client-ec2$/ }, (args) => (
      args.namespace === 'ec2-client-exports-used' ? undefined : { path: '@aws-sdk/client-ec2', namespace: 'ec2-client-exports-used' }
    ));
    build.onLoad({ filter: /.*/, namespace: 'ec2-client-exports-used' }, () => ({
      contents: Object.entries(EC2_EXPORTS_USED).map(([name, file]) => `export { ${name} } from '@aws-sdk/client-ec2/${file}';`).join('\n'),
      resolveDir: root,
      loader: 'js',
    }));
  },
};
const outdir = path.join(root, 'dist', 'bin');

/** The esbuild options of the CLI bundle, written to `outfile`. */
function bundleOptions(outfile = path.join(outdir, 'mirage-unikernel-ami.js')) {
  return {
    absWorkingDir: root,
    entryPoints: ['bin/mirage-unikernel-ami.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    mainFields: ['module', 'main'],
    target: 'node20',
    format: 'cjs',
    sourcemap: false,
    minify: true,
    legalComments: 'external',
    metafile: true,
    plugins: [sdkSchemaKeys, ec2ClientExportsUsed],
    logLevel: 'warning',
  };
}

module.exports = { bundleOptions };

if (require.main === module) {
  fs.rmSync(outdir, { recursive: true, force: true });
  esbuild.build(bundleOptions()).then(() => fs.chmodSync(path.join(outdir, 'mirage-unikernel-ami.js'), 0o755)).catch(() => process.exit(1));
}
