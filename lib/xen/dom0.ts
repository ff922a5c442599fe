/**
 * The machine `boot` starts under QEMU: the Xen hypervisor, a Linux kernel for dom0, and dom0's
 * initramfs, assembled from the host's Debian packages and cached under the user's cache directory
 * in a folder named after a digest of the package versions, so it is built once and rebuilt only
 * when one of them changes. dom0's own scripts are not cached: each boot adds them (dom0Scripts).
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gunzipSync } from 'zlib';
import { CpioArchive } from './cpio';
import { MODULES_DIR } from './dom0-scripts';
import {
  currentKernelPackage,
  downloadPackage,
  ensureHostPackages,
  HOST_PACKAGES,
  hypervisorPackage,
  installedVersions,
  runChecked,
  unpackDeb,
  XEN_LIB_DIR,
  XEN_RELEASE,
  XenHostError,
} from './host';

/** The files QEMU is given. */
export interface Dom0Machine {
  /** The hypervisor, uncompressed: QEMU's multiboot loader takes only an uncompressed ELF. */
  readonly hypervisor: string;
  /** dom0's Linux kernel (bzImage), handed to Xen as the first multiboot module. */
  readonly kernel: string;
  /** dom0's initramfs (gzip cpio), the second multiboot module. */
  readonly initramfs: string;
  /** Package versions the cache entry was built from. */
  readonly versions: { readonly [pkg: string]: string };
  /** True when this call built the entry, false when it was already cached. */
  readonly built: boolean;
}

export interface PrepareDom0Options {
  readonly progress: (line: string) => void;
  /**
   * Cache directory.
   * @default $XDG_CACHE_HOME/mirage-unikernel-ami/xen-boot, or ~/.cache/mirage-unikernel-ami/xen-boot
   */
  readonly cacheDir?: string;
  /**
   * Install missing host packages with apt-get when running as root.
   * @default true
   */
  readonly installPackages?: boolean;
}

/** Kernel modules dom0 loads, dependencies first (resolved from the kernel package's modules.dep). */
const DOM0_MODULES = [
  'virtio_pci', // the PCI transport of QEMU's virtio disk
  'virtio_blk', // the disk image as /dev/vda
  'xen-privcmd', // hypercalls from the toolstack
  'xenfs', // /proc/xen
  'xen-evtchn', // event channels for xenstored, xenconsoled and libxl
  'xen-gntdev', // grant mappings: xenconsoled maps the guest's console ring with it
  'xen-blkback', // the backend of the guest's xvda
];

/** Bump when the way the initramfs is assembled changes (dom0's scripts are not in it: each boot adds them). */
const LAYOUT_VERSION = 2;

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'mirage-unikernel-ami', 'xen-boot');
}

/** Returns the cached machine for the host's current packages, building it first when needed. */
export async function prepareDom0(options: PrepareDom0Options): Promise<Dom0Machine> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const tools = ensureHostPackages({ progress: options.progress, install: options.installPackages });
  const extra = installedVersions(['python3', 'libc6']);
  const kernelPackage = currentKernelPackage();
  const hypervisor = hypervisorPackage(tools.get(`xen-utils-${XEN_RELEASE}`)!);
  const versions: { [pkg: string]: string } = {};
  for (const [name, version] of [...tools, ...extra]) {
    if (version !== undefined) versions[name] = version;
  }
  versions[kernelPackage.name] = kernelPackage.version;
  versions[hypervisor.name] = hypervisor.version;

  const key = createHash('sha256')
    .update(JSON.stringify({ versions, layout: LAYOUT_VERSION }))
    .digest('hex')
    .slice(0, 16);
  const entry = path.join(cacheDir, `dom0-${key}`);
  const machine = (built: boolean): Dom0Machine => ({
    hypervisor: path.join(entry, 'xen'),
    kernel: path.join(entry, 'vmlinuz'),
    initramfs: path.join(entry, 'initramfs.cpio.gz'),
    versions,
    built,
  });
  if (fs.existsSync(path.join(entry, 'versions.json'))) {
    return machine(false);
  }

  fs.mkdirSync(cacheDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(cacheDir, 'build-'));
  try {
    const started = Date.now();
    options.progress(`building the dom0 machine (once per package versions) in ${entry}`);
    const staged = path.join(work, 'entry');
    fs.mkdirSync(staged);

    // Each step says when it is done, with the time so far: the whole build takes about a minute,
    // and the longest steps (the kernel package, compressing the initramfs) take tens of seconds.
    const step = (what: string) => options.progress(`  ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    const downloads = path.join(work, 'debs');
    fs.mkdirSync(downloads);
    const unpacked = path.join(work, 'unpacked');
    for (const pkg of [hypervisor, kernelPackage]) {
      options.progress(`downloading ${pkg.name} ${pkg.version} (apt-get download; nothing is installed)`);
      const deb = downloadPackage(pkg, downloads);
      step(`downloaded ${path.basename(deb)}, ${(fs.statSync(deb).size / 2 ** 20).toFixed(1)} MiB; unpacking it`);
      unpackDeb(deb, unpacked);
      step(`unpacked ${pkg.name}`);
    }

    const xenGz = path.join(unpacked, 'boot', `xen-${XEN_RELEASE}-amd64.gz`);
    if (!fs.existsSync(xenGz)) throw new XenHostError(`${hypervisor.name} has no boot/xen-${XEN_RELEASE}-amd64.gz`);
    fs.writeFileSync(path.join(staged, 'xen'), gunzipSync(fs.readFileSync(xenGz)));
    const modulesRoot = path.join(unpacked, 'lib', 'modules');
    const releases = fs.existsSync(modulesRoot) ? fs.readdirSync(modulesRoot) : [];
    if (releases.length !== 1) throw new XenHostError(`${kernelPackage.name} should hold one lib/modules/RELEASE, found ${releases.length}`);
    const release = releases[0];
    fs.copyFileSync(path.join(unpacked, 'boot', `vmlinuz-${release}`), path.join(staged, 'vmlinuz'));

    options.progress('assembling the dom0 initramfs');
    const archive = new CpioArchive();
    addModules(archive, unpacked, release);
    step(`added the kernel modules Xen's dom0 needs (${archive.size} files)`);
    addDom0Userland(archive);
    step(`added xenstored, xl, pygrub, busybox and their libraries (${archive.size} files); compressing the initramfs`);
    await archive.writeGzip(path.join(staged, 'initramfs.cpio.gz'));
    step('compressed the initramfs');
    fs.writeFileSync(path.join(staged, 'versions.json'), JSON.stringify({ versions, release, layout: LAYOUT_VERSION }, null, 2) + '\n');

    removeOtherEntries(cacheDir, path.basename(entry));
    try {
      fs.renameSync(staged, entry);
    } catch (err) {
      // Another boot built the same entry meanwhile: use theirs.
      if (!fs.existsSync(path.join(entry, 'versions.json'))) throw err;
    }
    const size = fs.statSync(path.join(entry, 'initramfs.cpio.gz')).size;
    options.progress(`dom0 machine ready: ${archive.size} files, initramfs ${(size / 2 ** 20).toFixed(1)} MiB, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return machine(true);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Earlier entries are for package versions no longer installed (each holds a 20 MB initramfs), and a
 * build directory older than an hour was left by a build that was killed.
 */
function removeOtherEntries(cacheDir: string, keep: string): void {
  for (const name of fs.readdirSync(cacheDir)) {
    const entry = path.join(cacheDir, name);
    const abandonedBuild = name.startsWith('build-') && Date.now() - fs.statSync(entry).mtimeMs > 3600_000;
    if ((name.startsWith('dom0-') && name !== keep) || abandonedBuild) {
      fs.rmSync(entry, { recursive: true, force: true });
    }
  }
}

/**
 * Copies DOM0_MODULES and their dependencies from the unpacked kernel package. Its modules.dep is
 * made by depmod at install time, which dpkg-deb -x does not run, so busybox's depmod makes it here.
 */
function addModules(archive: CpioArchive, unpacked: string, release: string): void {
  runChecked('/bin/busybox', ['depmod', '-b', unpacked, release], 'depmod for the dom0 kernel', { providedBy: 'busybox-static' });
  const moduleDir = path.join(unpacked, 'lib', 'modules', release);
  const depends = new Map<string, { file: string; deps: string[] }>();
  for (const line of fs.readFileSync(path.join(moduleDir, 'modules.dep'), 'utf8').split('\n')) {
    const [file, rest] = line.split(':');
    if (!file || rest === undefined) continue;
    depends.set(moduleName(file), { file, deps: rest.trim().split(/\s+/).filter(Boolean).map(moduleName) });
  }
  const builtin = new Set(
    fs.readFileSync(path.join(moduleDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(moduleName),
  );
  const order: string[] = [];
  const visit = (name: string, neededBy: string) => {
    const normalized = name.replace(/-/g, '_');
    if (builtin.has(normalized) || order.includes(normalized)) return;
    const module = depends.get(normalized);
    if (!module) throw new XenHostError(`the dom0 kernel ${release} has no module ${name} (needed by ${neededBy})`);
    module.deps.forEach((dep) => visit(dep, name));
    order.push(normalized);
    if (!module.file.endsWith('.ko')) {
      throw new XenHostError(`the dom0 kernel's module ${module.file} is compressed; boot reads only uncompressed .ko modules (Debian 12's)`);
    }
    archive.fileFrom(`${MODULES_DIR}/${normalized}.ko`, path.join(moduleDir, module.file), 0o644, 0);
  };
  DOM0_MODULES.forEach((name) => visit(name, 'dom0'));
  archive.file(`${MODULES_DIR}/load-order`, order.join('\n') + '\n');
}

function moduleName(file: string): string {
  return path.basename(file).replace(/\.ko(\..*)?$/, '').replace(/-/g, '_');
}

/** Python's standard library without what pygrub never imports (tests, GUI, build files). */
const PYTHON_EXCLUDED = /^(test|idlelib|tkinter|turtledemo|ensurepip|lib2to3|pydoc_data|unittest|distutils|config-[^/]*|site-packages|dist-packages)$/;

/** The toolstack, pygrub with Python, busybox and their libraries. */
function addDom0Userland(archive: CpioArchive): void {
  const host = new HostFiles(archive);
  host.add('/bin/busybox');
  for (const program of ['xl', 'xenstored', 'xenconsoled', 'xen-init-dom0', 'pygrub']) {
    host.add(`${XEN_LIB_DIR}/bin/${program}`);
  }
  for (const tool of ['xenstore', 'xenstore-read', 'xenstore-write', 'xenstore-exists']) {
    host.add(`/usr/bin/${tool}`);
  }
  // pygrub runs with /usr/bin/python3 (its #! line), imports Xen's Python modules from XEN_LIB_DIR/lib/python,
  // and reads filesystems through libxenfsimage's plugins.
  host.add('/usr/bin/python3');
  const pythonVersion = fs.readlinkSync('/usr/bin/python3').replace(/^python/, '');
  host.addTree(`/usr/lib/python${pythonVersion}`, (name) => !PYTHON_EXCLUDED.test(name));
  host.addTree(`${XEN_LIB_DIR}/lib`);
  // _curses reads a terminal description even when pygrub shows no menu; libxl sets TERM=vt100.
  for (const terminfo of ['/usr/share/terminfo/v/vt100', '/lib/terminfo/v/vt100']) {
    if (fs.existsSync(terminfo)) host.add(terminfo);
  }
  host.addSharedLibraries();
  // glibc loads libgcc_s with dlopen when a thread is cancelled (xl cancels its event thread on exit) and
  // aborts if it is missing; no program links it, so ldd does not list it.
  const libgcc = ['/lib/x86_64-linux-gnu/libgcc_s.so.1', '/usr/lib/x86_64-linux-gnu/libgcc_s.so.1'].find((file) => fs.existsSync(file));
  if (!libgcc) throw new XenHostError('libgcc_s.so.1 is missing (Debian package libgcc-s1)');
  host.add(libgcc);

  archive.file('/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  archive.file('/etc/group', 'root:x:0:\n');
  for (const dir of ['/proc', '/sys', '/dev', '/run', '/tmp', '/root', '/var/lib/xen', '/var/log/xen', '/var/lock']) {
    archive.directory(dir);
  }
  archive.symlink('/var/run', '../run');
}

/**
 * Host files copied into the archive at the same paths, with the symbolic links on the way kept as
 * links (so Debian's merged /usr, where /lib is a link to usr/lib, looks the same inside dom0).
 * Dynamically linked ELF files are remembered, to copy the shared libraries ldd says they load.
 */
class HostFiles {
  private readonly elfFiles = new Set<string>();

  constructor(private readonly archive: CpioArchive) {}

  /** Adds a path: each symbolic link on the way, then the file or directory it leads to. */
  add(hostPath: string): void {
    let resolved = '/';
    const parts = path.resolve(hostPath).split('/').filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      const current = path.join(resolved, parts[i]);
      const stat = fs.lstatSync(current);
      if (stat.isSymbolicLink()) {
        const target = fs.readlinkSync(current);
        this.archive.symlink(current, target);
        const rest = parts.slice(i + 1);
        this.add(path.join(path.resolve(resolved, target), ...rest));
        return;
      }
      resolved = current;
    }
    const stat = fs.statSync(resolved);
    if (stat.isDirectory()) {
      this.archive.directory(resolved, stat.mode & 0o7777);
    } else if (stat.isFile()) {
      this.addFile(resolved, stat);
    }
  }

  /** Adds a directory tree; `include` filters the names of its top-level entries. Dangling links are left out. */
  addTree(root: string, include: (name: string) => boolean = () => true): void {
    for (const name of fs.readdirSync(root)) {
      if (!include(name)) continue;
      const entry = path.join(root, name);
      const stat = fs.lstatSync(entry);
      if (stat.isSymbolicLink()) {
        if (fs.existsSync(entry)) this.add(entry);
      } else if (stat.isDirectory()) {
        this.archive.directory(entry, stat.mode & 0o7777);
        this.addTree(entry);
      } else if (stat.isFile()) {
        this.addFile(entry, stat);
      }
    }
  }

  /** Adds every shared library that ldd lists for the ELF files added so far, and their own. */
  addSharedLibraries(): void {
    const done = new Set<string>();
    let pending = [...this.elfFiles];
    while (pending.length > 0) {
      const next: string[] = [];
      for (const file of pending) {
        if (done.has(file)) continue;
        done.add(file);
        for (const library of sharedLibraries(file)) {
          if (!this.archive.has(library)) {
            this.add(library);
            next.push(fs.realpathSync(library));
          }
        }
      }
      pending = next;
    }
  }

  private addFile(file: string, stat: fs.Stats): void {
    if (this.archive.has(file)) return;
    this.archive.fileFrom(file, file, stat.mode, Math.floor(stat.mtimeMs / 1000));
    if (isDynamicElf(file)) this.elfFiles.add(file);
  }
}

function isDynamicElf(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const header = Buffer.alloc(64);
    const read = fs.readSync(fd, header, 0, 64, 0);
    if (read < 64 || header.readUInt32BE(0) !== 0x7f454c46) return false;
    const type = header.readUInt16LE(16);
    return type === 3 /* ET_DYN: shared objects and PIE executables */ || (type === 2 && hasInterpreter(fd, header));
  } finally {
    fs.closeSync(fd);
  }
}

/** An ET_EXEC file is dynamically linked when it has a PT_INTERP program header. */
function hasInterpreter(fd: number, header: Buffer): boolean {
  const phoff = Number(header.readBigUInt64LE(32));
  const phentsize = header.readUInt16LE(54);
  const phnum = header.readUInt16LE(56);
  const table = Buffer.alloc(phentsize * phnum);
  fs.readSync(fd, table, 0, table.length, phoff);
  for (let i = 0; i < phnum; i++) {
    if (table.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return true;
  }
  return false;
}

/** The libraries (and the dynamic loader) ldd lists for an ELF file, as absolute paths. */
function sharedLibraries(file: string): string[] {
  // No LD_LIBRARY_PATH: dom0 has none either, and Xen's libraries outside the default path are found by RUNPATH.
  const { LD_LIBRARY_PATH: _ignored, ...env } = process.env;
  const result = runChecked('ldd', [file], `ldd ${file}`, { providedBy: 'libc-bin', env });
  const libraries: string[] = [];
  for (const line of result.split('\n')) {
    const match = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(0x/.exec(line);
    if (match) libraries.push(match[1]);
    if (/=>\s+not found/.test(line)) {
      throw new XenHostError(`ldd cannot find a library of ${file}: ${line.trim()}`);
    }
  }
  return libraries;
}

export { HOST_PACKAGES };
