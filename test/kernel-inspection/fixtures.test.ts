/**
 * The committed kernel fixtures are what their sources build: build.sh rebuilds them into a
 * temporary folder with the machine's gcc, binutils, gzip, xz, bzip2 and python3 (it fails,
 * never skips, when one is missing), and cmp finds each rebuilt kernel byte for byte the same as
 * the committed one (build.sh is deterministic on this toolchain, see the fixtures' README).
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';

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

  test('cmp finds each rebuilt fixture identical to the committed one', () => {
    for (const name of readdirSync(rebuilt)) {
      const cmp = spawnSync('cmp', [path.join(rebuilt, name), path.join(FIXTURES, name)], { encoding: 'utf8' });
      if (cmp.error) {
        throw new Error(`cmp could not run (${cmp.error.message}); install the Debian package diffutils`);
      }
      expect({ name, status: cmp.status, differences: cmp.stdout + cmp.stderr }).toEqual({ name, status: 0, differences: '' });
    }
  });
});
