import * as fs from 'fs';
import * as path from 'path';

const PACKAGE_NAME = 'mirage-unikernel-ami';

/** The package root: the nearest folder above `from` whose package.json names this package. */
function packageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).name === PACKAGE_NAME) {
      return dir;
    }
    if (path.dirname(dir) === dir) {
      throw new Error(`Cannot find the ${PACKAGE_NAME} package root above ${from}: no package.json named ${PACKAGE_NAME}. Reinstall the package.`);
    }
  }
}

/**
 * The folder holding the bundled custom-resource handler (index.js exporting onEvent and isComplete).
 *
 * The handler is bundled when the package is built, so a user's synth never compiles TypeScript; the
 * same lookup works from lib/ (ts-node, tests) and from dist/lib/ (the published package).
 */
export function handlerAssetDirectory(from: string = __dirname): string {
  const root = packageRoot(from);
  const directory = path.join(root, 'assets', 'unikernel-ami-handler');
  if (!fs.existsSync(path.join(directory, 'index.js'))) {
    throw new Error(
      `The bundled custom-resource handler ${path.join(directory, 'index.js')} is missing. ` +
      `Build it with "node scripts/bundle-handler.js" (npm run build and npm test do this) in ${root}.`,
    );
  }
  return directory;
}
