// The esbuild options both shipped bundles share (scripts/bundle-handler.js, scripts/bundle-cli.js):
// one CommonJS file for Node, the SDK's ES module build first so that esbuild keeps only what is
// used, minified, deterministic (no source maps), licence comments of bundled code in a file beside
// the bundle, and a metafile for THIRD-PARTY-NOTICES (scripts/third-party-notices.js).
'use strict';
const path = require('path');

const root = path.resolve(__dirname, '..');

/** The options of a bundle of `entryPoint` (relative to the package root) into `outfile`, with `plugins`. */
function nodeBundleOptions({ entryPoint, outfile, plugins }) {
  return {
    absWorkingDir: root,
    entryPoints: [entryPoint],
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
    plugins,
    logLevel: 'warning',
  };
}

module.exports = { nodeBundleOptions, root };
