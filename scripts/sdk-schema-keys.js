// An esbuild plugin that lets the bundler drop the AWS SDK schemas a bundle does not use.
//
// Each AWS SDK v3 client describes every shape of its service in dist-es/schemas/schemas_0.js as a
// top-level `var` holding an array literal. Their traits are object literals with computed keys
// (`{ [_xN]: "ImageId" }`, where `const _xN = "xmlName"` is a string constant of the same file), and
// a computed key may run code (toString), so esbuild must keep every such schema, used or not: for
// EC2 that is half a megabyte of minified code that each cold start parses. This plugin rewrites a
// computed key that names one of the file's own string constants into that string (`{ "xmlName":
// "ImageId" }`), the same object, so unused schemas become side-effect free and are tree-shaken.
// Only a key right after `{` or `,` is rewritten; anything else is left as it is.
// test/package/sdk-schema-keys.test.ts checks that the bundled clients serialize the same requests as the SDK.
'use strict';
const fs = require('fs');

const SCHEMA_FILE = /[\\/]node_modules[\\/]@aws-sdk[\\/][^\\/]+[\\/]dist-es[\\/]schemas[\\/]schemas_\d+\.js$/;

/** The source of a schemas file with computed keys that name its string constants written as those strings. */
function inlineSchemaKeys(source) {
  const constants = new Map();
  for (const [, name, literal] of source.matchAll(/^const (_\w+) = ("(?:[^"\\\n]|\\.)*");$/gm)) {
    constants.set(name, literal);
  }
  return source.replace(/([{,]\s*)\[(_\w+)\]:/g, (whole, before, name) => (constants.has(name) ? `${before}${constants.get(name)}:` : whole));
}

const sdkSchemaKeys = {
  name: 'sdk-schema-keys',
  setup(build) {
    build.onLoad({ filter: SCHEMA_FILE }, async (args) => ({
      contents: inlineSchemaKeys(await fs.promises.readFile(args.path, 'utf8')),
      loader: 'js',
    }));
  },
};

module.exports = { sdkSchemaKeys, inlineSchemaKeys };
