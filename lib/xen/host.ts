/**
 * What `boot` needs from the host, all from its Debian packages: the tools copied into dom0 or run
 * here are installed packages; the Xen hypervisor and the dom0 Linux kernel are only downloaded
 * (`apt-get download`) and unpacked into the cache, so booting under QEMU never adds a hypervisor
 * or a kernel to the host's own boot menu.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';

/** The Xen release whose tools and hypervisor are used: Debian 12 (bookworm) ships 4.17. */
export const XEN_RELEASE = '4.17';
export const XEN_LIB_DIR = `/usr/lib/xen-${XEN_RELEASE}`;
export const HYPERVISOR_PACKAGE = `xen-hypervisor-${XEN_RELEASE}-amd64`;
/** Debian's metapackage that depends on the current amd64 kernel (the cloud flavour has no dom0 support). */
export const KERNEL_METAPACKAGE = 'linux-image-amd64';

/** The host cannot boot the guest: a missing package, a failed download, QEMU or Xen failing. */
export class XenHostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XenHostError';
  }
}

export interface HostPackage {
  readonly name: string;
  /** A file the package installs, checked to be there. */
  readonly file: string;
  readonly purpose: string;
}

/** Installed on the host: QEMU runs here, the rest is copied into the dom0 initramfs. */
export const HOST_PACKAGES: readonly HostPackage[] = [
  { name: 'qemu-system-x86', file: '/usr/bin/qemu-system-x86_64', purpose: 'runs Xen under software emulation' },
  { name: `xen-utils-${XEN_RELEASE}`, file: `${XEN_LIB_DIR}/bin/xl`, purpose: "dom0's toolstack: xl, xenstored, xenconsoled, pygrub" },
  { name: 'xenstore-utils', file: '/usr/bin/xenstore', purpose: "xenstore-read and -write for dom0's disk hotplug script" },
  { name: 'busybox-static', file: '/bin/busybox', purpose: "dom0's shell and utilities, and depmod for its kernel modules" },
];

export interface CommandResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; ENOENT becomes a XenHostError naming the package that provides it. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; providedBy?: string; maxBuffer?: number } = {},
): CommandResult {
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env,
    encoding: 'utf8',
    maxBuffer: options.maxBuffer ?? 64 * 1024 * 1024,
  });
  if (result.error) {
    if ((result.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new XenHostError(
        `${command} is not installed` + (options.providedBy ? ` (Debian package ${options.providedBy})` : '') +
        '; boot needs a Debian or Ubuntu host with dpkg and apt.',
      );
    }
    throw new XenHostError(`${command} could not be run: ${result.error.message}`);
  }
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a command that must succeed; on failure the error names it and ends with its last lines of output. */
export function runChecked(command: string, args: readonly string[], what: string, options: Parameters<typeof runCommand>[2] = {}): string {
  const result = runCommand(command, args, options);
  if (result.status !== 0) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n  ');
    throw new XenHostError(`${what} failed (${command} exited with ${result.status})${tail ? ':\n  ' + tail : ''}`);
  }
  return result.stdout;
}

/** The installed version of each package (undefined when not installed), from dpkg's database. */
export function installedVersions(packages: readonly string[]): Map<string, string | undefined> {
  const result = runCommand('dpkg-query', ['-W', '-f=${Package}\t${db:Status-Status}\t${Version}\n', ...packages], { providedBy: 'dpkg' });
  const versions = new Map<string, string | undefined>(packages.map((name) => [name, undefined]));
  for (const line of result.stdout.split('\n')) {
    const [name, status, version] = line.split('\t');
    if (versions.has(name) && status === 'installed') {
      versions.set(name, version);
    }
  }
  return versions;
}

export interface EnsurePackagesOptions {
  /** Told what is being installed. */
  readonly progress: (line: string) => void;
  /**
   * Install missing packages with apt-get when running as root.
   * @default true
   */
  readonly install?: boolean;
  /**
   * The packages to check.
   * @default HOST_PACKAGES
   */
  readonly packages?: readonly HostPackage[];
}

/**
 * Makes sure HOST_PACKAGES are installed: as root with apt-get, installs the missing ones;
 * otherwise throws naming them and the command that installs them.
 * @returns the installed version of each
 */
export function ensureHostPackages(options: EnsurePackagesOptions): Map<string, string> {
  const packages = options.packages ?? HOST_PACKAGES;
  let versions = installedVersions(packages.map((p) => p.name));
  let missing = packages.filter((p) => versions.get(p.name) === undefined || !fs.existsSync(p.file));
  if (missing.length > 0 && (options.install ?? true) && process.getuid?.() === 0 && commandExists('apt-get')) {
    const names = missing.map((p) => p.name);
    options.progress(`installing the Debian packages boot needs: ${names.join(' ')}`);
    runChecked('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...names], `apt-get install ${names.join(' ')}`, {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    versions = installedVersions(packages.map((p) => p.name));
    missing = packages.filter((p) => versions.get(p.name) === undefined || !fs.existsSync(p.file));
  }
  if (missing.length > 0) {
    const names = missing.map((p) => p.name).join(' ');
    throw new XenHostError(
      `boot needs these Debian packages: ${missing.map((p) => `${p.name} (${p.purpose})`).join('; ')}. ` +
      `Install them with: sudo apt-get install -y ${names}`,
    );
  }
  return new Map([...versions].map(([name, version]) => [name, version!]));
}

function commandExists(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && fs.existsSync(`${dir}/${command}`));
}

/** A package to download: its name and the version apt would download. */
export interface DownloadablePackage {
  readonly name: string;
  readonly version: string;
}

/**
 * The kernel package `linux-image-amd64` currently depends on (e.g. linux-image-6.1.0-56-amd64), and its version.
 * @throws XenHostError when apt knows no such package (no package lists: apt-get update)
 */
export function currentKernelPackage(): DownloadablePackage {
  const depends = runCommand('apt-cache', ['depends', KERNEL_METAPACKAGE], { providedBy: 'apt' });
  const match = /Depends: (linux-image-[0-9][^\s]*)/.exec(depends.stdout);
  if (depends.status !== 0 || !match) {
    throw new XenHostError(
      `apt does not know ${KERNEL_METAPACKAGE}, whose kernel boot uses for dom0. On Debian, run 'sudo apt-get update' ` +
      '(boot downloads the kernel package into its cache; it does not install it).',
    );
  }
  return { name: match[1], version: candidateVersion(match[1]) };
}

/** The hypervisor package of the same version as the installed Xen tools when apt still has it, else its candidate. */
export function hypervisorPackage(toolsVersion: string): DownloadablePackage {
  const available = runCommand('apt-cache', ['show', `${HYPERVISOR_PACKAGE}=${toolsVersion}`], { providedBy: 'apt' });
  if (available.status === 0 && available.stdout.includes('Package:')) {
    return { name: HYPERVISOR_PACKAGE, version: toolsVersion };
  }
  return { name: HYPERVISOR_PACKAGE, version: candidateVersion(HYPERVISOR_PACKAGE) };
}

function candidateVersion(name: string): string {
  const policy = runCommand('apt-cache', ['policy', name], { providedBy: 'apt' });
  const match = /Candidate: (\S+)/.exec(policy.stdout);
  if (policy.status !== 0 || !match || match[1] === '(none)') {
    throw new XenHostError(`apt has no version of ${name} to download; run 'sudo apt-get update' and try again.`);
  }
  return match[1];
}

/** Downloads a package's .deb into `dir` with apt-get download (no root needed) and returns its path. */
export function downloadPackage(pkg: DownloadablePackage, dir: string): string {
  runChecked('apt-get', ['download', '-q', `${pkg.name}=${pkg.version}`], `downloading ${pkg.name} ${pkg.version}`, { cwd: dir, providedBy: 'apt' });
  const deb = fs.readdirSync(dir).find((file) => file.startsWith(`${pkg.name}_`) && file.endsWith('.deb'));
  if (!deb) {
    throw new XenHostError(`apt-get download ${pkg.name} left no .deb in ${dir}`);
  }
  return `${dir}/${deb}`;
}

/** Unpacks a .deb's files into `dir` (dpkg-deb -x: no maintainer scripts run, nothing is registered with dpkg). */
export function unpackDeb(deb: string, dir: string): void {
  runChecked('dpkg-deb', ['-x', deb, dir], `unpacking ${deb}`, { providedBy: 'dpkg' });
}
