import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as esbuild from 'esbuild';
import { handlerAssetDirectory } from '../../lib/unikernel-ami/handler-asset';

const { bundleOptions } = require('../../scripts/bundle-handler.js') as { bundleOptions(outfile: string): esbuild.BuildOptions };

describe('handlerAssetDirectory', () => {
  let directory: string;
  beforeEach(() => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-asset-'));
  });
  afterEach(() => fs.rmSync(directory, { recursive: true, force: true }));

  function writePackage(root: string, name: string) {
    fs.mkdirSync(path.join(root, 'dist', 'lib', 'unikernel-ami'), { recursive: true });
    fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name }));
  }

  test('finds assets/unikernel-ami-handler at the package root above the compiled code', () => {
    writePackage(directory, 'mirage-unikernel-ami');
    fs.mkdirSync(path.join(directory, 'assets', 'unikernel-ami-handler'), { recursive: true });
    fs.writeFileSync(path.join(directory, 'assets', 'unikernel-ami-handler', 'index.js'), 'exports.onEvent = 1;');
    expect(handlerAssetDirectory(path.join(directory, 'dist', 'lib', 'unikernel-ami'))).toBe(path.join(directory, 'assets', 'unikernel-ami-handler'));
  });

  test('skips package.json files of other packages on the way up', () => {
    writePackage(directory, 'mirage-unikernel-ami');
    fs.writeFileSync(path.join(directory, 'dist', 'package.json'), JSON.stringify({ name: 'something-else' }));
    fs.mkdirSync(path.join(directory, 'assets', 'unikernel-ami-handler'), { recursive: true });
    fs.writeFileSync(path.join(directory, 'assets', 'unikernel-ami-handler', 'index.js'), '');
    expect(handlerAssetDirectory(path.join(directory, 'dist', 'lib'))).toBe(path.join(directory, 'assets', 'unikernel-ami-handler'));
  });

  test('a missing bundle says how to build it', () => {
    writePackage(directory, 'mirage-unikernel-ami');
    expect(() => handlerAssetDirectory(path.join(directory, 'dist', 'lib', 'unikernel-ami')))
      .toThrow(/bundled custom-resource handler .*assets\/unikernel-ami-handler\/index.js is missing. Build it with "node scripts\/bundle-handler.js"/);
  });

  test('outside the package it says so', () => {
    writePackage(directory, 'not-this-package');
    expect(() => handlerAssetDirectory(path.join(directory, 'dist'))).toThrow(/Cannot find the mirage-unikernel-ami package root above/);
  });

  test('the bundle found is the handler of this checkout as it is now, and exports what the Lambda functions call (npm test builds it first)', async () => {
    // GIVEN the bundle the construct would deploy
    const bundle = path.join(handlerAssetDirectory(), 'index.js');
    // WHEN the handler's source is bundled afresh with the same options
    const fresh = path.join(directory, 'index.js');
    await esbuild.build(bundleOptions(fresh));
    // THEN they are the same bytes (a stale bundle fails here: run "node scripts/bundle-handler.js")
    expect(fs.readFileSync(bundle).equals(fs.readFileSync(fresh))).toBe(true);
    // AND it exports the functions build-infrastructure.ts names as the Lambda handlers (index.onEvent, index.isComplete)
    const loaded = require(bundle) as Record<string, unknown>;
    expect({ onEvent: typeof loaded.onEvent, isComplete: typeof loaded.isComplete }).toEqual({ onEvent: 'function', isComplete: 'function' });
  });
});
