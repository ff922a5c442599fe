#!/usr/bin/env node
// Bundles the custom-resource handler (lib/unikernel-ami/handler) into a plain asset directory that
// the construct loads with lambda.Code.fromAsset, so a user's `cdk synth` never compiles our
// TypeScript. The output is deterministic (no source maps, no timestamps, paths relative to the
// package root) so the asset hash, and with it the integ snapshot, is stable across machines.
'use strict';
const path = require('path');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..');
const outdir = path.join(root, 'assets', 'unikernel-ami-handler');

/** The esbuild options of the bundle, written to `outfile` (tests rebuild it elsewhere to compare). */
function bundleOptions(outfile = path.join(outdir, 'index.js')) {
  return {
    absWorkingDir: root,
    entryPoints: ['lib/unikernel-ami/handler/index.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: false,
    minify: false,
    legalComments: 'none',
    logLevel: 'warning',
  };
}

module.exports = { bundleOptions };

if (require.main === module) {
  esbuild.build(bundleOptions()).catch(() => process.exit(1));
}
