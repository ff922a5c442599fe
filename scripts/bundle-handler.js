#!/usr/bin/env node
// Bundles the custom-resource handler (lib/unikernel-ami/handler) into a plain asset directory that
// the construct loads with lambda.Code.fromAsset, so a user's `cdk synth` never compiles our
// TypeScript. The output is deterministic (no source maps, no timestamps, paths relative to the
// package root) so the asset hash, and with it the integ snapshot, is stable across machines.
//
// Every cold start of the Lambda parses this file before onEvent runs, so it is kept small
// (bench/handler-cold-start.ts measures it; goal: a cold require within 250 ms on Node 24):
// - minified, as CDK's own Node.js handlers are;
// - the SDK's ES module build (mainFields: module first) so that esbuild keeps only the commands
//   the handler sends, with scripts/sdk-schema-keys.js so that it can also drop the schemas of
//   every other operation of EC2, S3, SSM and EBS;
// - the AWS SDK bundled, pinned at the versions in package-lock.json, rather than left external for
//   the Lambda runtime's own copy: the runtime's SDK is a version this package was never tested
//   with, which AWS changes under deployed stacks, and it loads every client whole (its CommonJS
//   build, all operations and schemas), which measured slower to require than this bundle does
//   (see the report of bench/handler-cold-start.ts in the changelog).
// Licence comments of bundled code go to index.js.LEGAL.txt beside the bundle (when there are any);
// THIRD-PARTY-NOTICES (scripts/third-party-notices.js) lists every bundled package with its licence.
'use strict';
const fs = require('fs');
const path = require('path');
const esbuild = require('esbuild');
const { nodeBundleOptions } = require('./node-bundle');
const { sdkSchemaKeys } = require('./sdk-schema-keys');

const root = path.resolve(__dirname, '..');
const outdir = path.join(root, 'assets', 'unikernel-ami-handler');

/** The esbuild options of the bundle, written to `outfile` (tests rebuild it elsewhere to compare). */
function bundleOptions(outfile = path.join(outdir, 'index.js')) {
  return nodeBundleOptions({ entryPoint: 'lib/unikernel-ami/handler/index.ts', outfile, plugins: [sdkSchemaKeys] });
}

module.exports = { bundleOptions };

if (require.main === module) {
  // Emptied first, so that no file of an earlier build (a licence file) stays in the asset.
  fs.rmSync(outdir, { recursive: true, force: true });
  esbuild.build(bundleOptions()).catch(() => process.exit(1));
}
