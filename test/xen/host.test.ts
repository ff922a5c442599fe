/** What boot needs from the host, asked of the real dpkg database. */
import { ensureHostPackages, HOST_PACKAGES, installedVersions, XenHostError } from '../../lib/xen/host';

test('the packages boot needs are installed here (scripts/ensure-test-tools.sh installs them), with their versions', () => {
  const versions = ensureHostPackages({ progress: () => undefined, install: false });
  expect([...versions.keys()].sort()).toEqual(HOST_PACKAGES.map((p) => p.name).sort());
  for (const version of versions.values()) {
    expect(version).toMatch(/^[0-9]/);
  }
});

test('a missing package is named with the apt-get line that installs it, without installing anything', () => {
  const missing = { name: 'mua-no-such-package', file: '/nonexistent/mua-tool', purpose: 'a tool no machine has' };
  const progress: string[] = [];
  const check = () => ensureHostPackages({ progress: (line) => progress.push(line), install: false, packages: [HOST_PACKAGES[0], missing] });
  expect(check).toThrow(XenHostError);
  expect(check).toThrow(
    'boot needs these Debian packages: mua-no-such-package (a tool no machine has). Install them with: sudo apt-get install -y mua-no-such-package',
  );
  expect(progress).toEqual([]);
});

test('installedVersions reads dpkg: an installed package has its version, an unknown one none', () => {
  const versions = installedVersions(['dpkg', 'mua-no-such-package']);
  expect(versions.get('dpkg')).toMatch(/^[0-9]/);
  expect(versions.get('mua-no-such-package')).toBeUndefined();
});
