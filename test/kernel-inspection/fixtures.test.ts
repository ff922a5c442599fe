/**
 * The committed kernel fixtures are what their sources build: build.sh rebuilds them into a
 * temporary folder with the machine's gcc, binutils, gzip, xz, bzip2 and python3 (it fails,
 * never skips, when one is missing), and each rebuilt kernel must inspect like the committed one.
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { inspectKernel } from '../../lib/kernel-inspection';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'kernels');
const BUILT_FILE = /\.(elf|gz|xz|bz2|bin)$/;

describe('kernel fixtures', () => {
  let rebuilt: string;

  beforeAll(() => {
    rebuilt = mkdtempSync(path.join(tmpdir(), 'kernel-fixtures-'));
    const build = spawnSync('sh', [path.join(FIXTURES, 'build.sh'), rebuilt], { encoding: 'utf8' });
    if (build.status !== 0) {
      throw new Error(`build.sh failed (exit ${build.status}); it needs gcc, binutils, gzip, xz, bzip2 and python3:\n${build.stderr}`);
    }
  });

  afterAll(() => rmSync(rebuilt, { recursive: true, force: true }));

  test('build.sh rebuilds every committed fixture', () => {
    const committed = readdirSync(FIXTURES).filter((name) => BUILT_FILE.test(name)).sort();
    expect(committed.length).toBeGreaterThan(10);
    expect(readdirSync(rebuilt).sort()).toEqual(committed);
  });

  test('each rebuilt fixture inspects the same as the committed one', () => {
    for (const name of readdirSync(rebuilt)) {
      expect({ name, inspection: inspectKernel(readFileSync(path.join(rebuilt, name))) })
        .toEqual({ name, inspection: inspectKernel(readFileSync(path.join(FIXTURES, name))) });
    }
  });
});
