#!/usr/bin/env bash
# The slow checks of the published package, after the README's `npm test`:
# - npm run build: the handler and CLI bundles, THIRD-PARTY-NOTICES, the jsii assembly (.jsii);
# - test/extended: the assembly is the construct API, API.md is current (jsii-docgen), the README
#   snippets compile through jsii-rosetta --strict, the jsii-pacmak bindings (--code-only) are sound
#   (Python byte-compiles, Java declares the construct), and `npm publish --dry-run` is clean;
# - test/consumer: the packed tarball in fresh `cdk init` apps with the newest and the lowest
#   aws-cdk-lib, synthesized and run on Node 20, 22 and 24 (Node binaries from the npm registry).
# Needs the npm registry (CI reaches it) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build
npx jest -c jest.extended.config.js "$@"
