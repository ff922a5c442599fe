/**
 * Boots a PV guest under the real Xen hypervisor inside QEMU's software emulation (TCG), so that
 * a machine without Xen or hardware virtualization can watch a unikernel start: QEMU loads Xen,
 * Xen starts dom0 (Linux with the initramfs from dom0.ts), and dom0 runs `xl create` on the guest.
 * The guest's console goes to `console`, the milestones with their times to `progress`.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gzipSync } from 'zlib';
import { CpioArchive } from './cpio';
import { prepareDom0 } from './dom0';
import { addDom0Scripts, DOM0_DISK, DOM0_LINE_PREFIX, Dom0Event, GUEST_CONFIG_PATH, GUEST_ENV_PATH, GUEST_FILES_DIR } from './dom0-scripts';
import { XenHostError } from './host';
import { DEFAULT_MEMORY_MIB, renderXlConfig, XlConfigOptions } from './xl-config';

export interface BootOptions {
  /** The guest, with host paths: a kernel file (direct boot) or a disk image (pygrub). A bridge is left out. */
  readonly guest: XlConfigOptions;
  /**
   * Seconds the guest may run before it is destroyed.
   * @default 60
   */
  readonly timeoutSeconds?: number;
  /**
   * Seconds QEMU, Xen and dom0 may take to create the guest. Software emulation is slow, and slower
   * on a busy machine; a warm boot on 2 cores takes well under a minute.
   * @default 600
   */
  readonly startupTimeoutSeconds?: number;
  /** Receives the guest's console output, line by line (each with its newline). */
  readonly console: (text: string) => void;
  /** Receives progress lines (without newline). */
  readonly progress: (line: string) => void;
  /**
   * Cache directory for the dom0 machine.
   * @default see defaultCacheDir()
   */
  readonly cacheDir?: string;
  /**
   * Install missing Debian packages with apt-get when running as root.
   * @default true
   */
  readonly installPackages?: boolean;
}

/** How the boot ended: 0 the guest shut itself down; 1 it crashed, rebooted or outlived the timeout; 2 the host could not boot it. */
export interface BootResult {
  readonly exitCode: 0 | 1 | 2;
  /** One line that says what happened. */
  readonly summary: string;
  /** Seconds from QEMU's start to each milestone reached. */
  readonly timings: { readonly [milestone: string]: number };
}

export const DEFAULT_GUEST_TIMEOUT_SECONDS = 60;
const DEFAULT_STARTUP_TIMEOUT_SECONDS = 600;
const DOM0_MEMORY_MIB = 512;
/** Room for Xen's own heap and page tables next to dom0 and the guest. */
const XEN_MEMORY_MIB = 128;

/**
 * Without SMAP and SMEP: with them emulated, dom0 crashes under TCG at its first exception bounce
 * (a Xen page fault in create_bounce_frame).
 */
const QEMU_CPU = 'max,-smap,-smep';
const XEN_COMMAND_LINE = `console=com1 com1=115200,8n1 dom0_mem=${DOM0_MEMORY_MIB}M,max:${DOM0_MEMORY_MIB}M dom0_max_vcpus=1`;
const DOM0_COMMAND_LINE = 'console=hvc0 quiet loglevel=3';

/** libxl_shutdown_reason values, as xl reports them. */
const SHUTDOWN_REASONS: { [code: string]: string } = {
  0: 'poweroff',
  1: 'reboot',
  2: 'suspend',
  3: 'crash',
  4: 'watchdog',
  5: 'soft_reset',
};

/** Boots the guest and reports how it ended; a host problem is a result with exit code 2, not an exception. */
export async function bootGuest(options: BootOptions): Promise<BootResult> {
  const timeoutSeconds = options.timeoutSeconds ?? DEFAULT_GUEST_TIMEOUT_SECONDS;
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1) {
    throw new RangeError(`Invalid guest timeout ${timeoutSeconds}: give a whole number of seconds, at least 1.`);
  }
  renderXlConfig(options.guest); // refuses bad guest options before anything is built
  let runDir: string | undefined;
  try {
    const hostFile = options.guest.kernel ?? options.guest.disk!;
    if (!fs.existsSync(hostFile)) {
      throw new XenHostError(`${hostFile} does not exist`);
    }
    const machine = await prepareDom0({ progress: options.progress, cacheDir: options.cacheDir, installPackages: options.installPackages });
    runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-boot-'));
    if (/[\s,]/.test(runDir)) {
      // QEMU's -initrd takes "FILE ARGS,FILE": the paths in it can hold neither spaces nor commas.
      throw new XenHostError(`the temporary directory ${runDir} has a space or comma in its path, which QEMU's -initrd cannot take; set TMPDIR to another directory`);
    }
    const { guest, drive } = guestInDom0(options.guest, options.progress);
    const runArchive = addDom0Scripts(new CpioArchive())
      .file(GUEST_CONFIG_PATH, renderXlConfig(guest))
      .file(GUEST_ENV_PATH, `GUEST_NAME='${guest.name}'\nGUEST_HAS_DISK=${drive ? 1 : 0}\n`);
    if (options.guest.kernel !== undefined) {
      runArchive.fileFrom(guest.kernel!, options.guest.kernel, 0o644, 0);
    }
    // The kernel unpacks concatenated archives in order: the cached base, then this boot's files.
    const initrd = path.join(runDir, 'initrd.gz');
    fs.copyFileSync(machine.initramfs, initrd);
    fs.appendFileSync(initrd, gzipSync(runArchive.toBuffer()));
    const dom0Kernel = path.join(runDir, 'vmlinuz');
    fs.symlinkSync(machine.kernel, dom0Kernel);

    const memoryMiB = DOM0_MEMORY_MIB + (guest.memoryMiB ?? DEFAULT_MEMORY_MIB) + XEN_MEMORY_MIB;
    const args = [
      '-machine', 'pc,accel=tcg', '-cpu', QEMU_CPU, '-smp', '1', '-m', String(memoryMiB),
      '-display', 'none', '-nodefaults', '-no-user-config', '-no-reboot', '-monitor', 'none', '-serial', 'stdio',
      '-kernel', machine.hypervisor, '-append', XEN_COMMAND_LINE,
      '-initrd', `${dom0Kernel} ${DOM0_COMMAND_LINE},${initrd}`,
    ];
    if (drive) {
      args.push('-drive', `file=${drive.replace(/,/g, ',,')},format=raw,if=virtio,readonly=on`);
    }
    return await runQemu(args, guest.name, timeoutSeconds, options);
  } catch (err) {
    if (err instanceof XenHostError) {
      return { exitCode: 2, summary: `the host could not boot the guest: ${err.message}`, timings: {} };
    }
    throw err;
  } finally {
    if (runDir) fs.rmSync(runDir, { recursive: true, force: true });
  }
}

/** The guest as dom0 sees it: a kernel from this boot's archive, or the disk QEMU attaches as dom0's DOM0_DISK. */
function guestInDom0(guest: XlConfigOptions, progress: (line: string) => void): { guest: XlConfigOptions; drive?: string } {
  if (guest.bridge !== undefined) {
    progress(`leaving out the network interface on bridge ${guest.bridge}: the boot machine has no network`);
  }
  const inDom0: XlConfigOptions = { ...guest, bridge: undefined };
  if (guest.kernel !== undefined) {
    return { guest: { ...inDom0, kernel: `${GUEST_FILES_DIR}/kernel` } };
  }
  return { guest: { ...inDom0, disk: DOM0_DISK }, drive: path.resolve(guest.disk!) };
}

interface Outcome {
  readonly exitCode: 0 | 1 | 2;
  readonly summary: string;
}

function runQemu(args: string[], guestName: string, timeoutSeconds: number, options: BootOptions): Promise<BootResult> {
  const started = Date.now();
  const timings: { [milestone: string]: number } = {};
  const elapsed = () => (Date.now() - started) / 1000;
  const milestone = (name: string, detail = '') => {
    timings[name] = elapsed();
    options.progress(`${elapsed().toFixed(1).padStart(6)} s  ${name}${detail ? ' ' + detail : ''}`);
  };
  const recentLines: string[] = [];
  const logLines: string[] = [];
  let outcome: Outcome | undefined;
  let fatalLine: string | undefined;
  let qemuStderr = '';

  return new Promise<BootResult>((resolve) => {
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    milestone('QEMU started');
    const kill = () => {
      if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
    };
    // Stop QEMU if this process is told to stop, so no emulator is left running.
    const onSignal = (signal: NodeJS.Signals) => {
      outcome ??= timings['guest created'] === undefined
        ? { exitCode: 2, summary: `interrupted (${signal}) before the guest was created; stopped QEMU` }
        : { exitCode: 1, summary: `interrupted (${signal}) while guest ${guestName} ran; stopped QEMU` };
      kill();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const startupDeadline = setTimeout(() => {
      outcome ??= { exitCode: 2, summary: `Xen and dom0 did not create the guest within ${options.startupTimeoutSeconds ?? DEFAULT_STARTUP_TIMEOUT_SECONDS} s` };
      kill();
    }, (options.startupTimeoutSeconds ?? DEFAULT_STARTUP_TIMEOUT_SECONDS) * 1000);
    let runDeadline: NodeJS.Timeout | undefined;
    let doneGrace: NodeJS.Timeout | undefined;

    const onLine = (raw: string) => {
      const line = raw.replace(/\r/g, '');
      if (line.startsWith(DOM0_LINE_PREFIX)) {
        const [event, ...rest] = line.slice(DOM0_LINE_PREFIX.length).split(' ');
        const detail = rest.join(' ');
        switch (event) {
          case Dom0Event.CONSOLE:
            options.console(detail + '\n');
            return;
          case Dom0Event.LOG:
            logLines.push(detail);
            return;
          case Dom0Event.UP:
            milestone('dom0 up', `(Linux ${detail})`);
            return;
          case Dom0Event.TOOLSTACK:
            milestone('dom0 toolstack up');
            return;
          case Dom0Event.CREATED:
            clearTimeout(startupDeadline);
            milestone('guest created', `(${guestName}, domain ${detail})`);
            // The timeout is kept here, on the host's clock: stopping QEMU stops the guest with it.
            runDeadline = setTimeout(() => {
              milestone('guest stopped', '(timeout)');
              outcome ??= { exitCode: 1, summary: `guest ${guestName} was still running after ${timeoutSeconds} s (--timeout); stopped it` };
              kill();
            }, timeoutSeconds * 1000);
            return;
          case Dom0Event.EXIT: {
            clearTimeout(runDeadline);
            const reason = SHUTDOWN_REASONS[detail] ?? `reason code ${detail}`;
            milestone('guest exited', `(${reason})`);
            outcome = reason === 'poweroff'
              ? { exitCode: 0, summary: `guest ${guestName} shut down by itself (poweroff) ${elapsed().toFixed(1)} s after QEMU started` }
              : { exitCode: 1, summary: `guest ${guestName} ${reason === 'crash' ? 'crashed' : `ended with shutdown reason '${reason}'`}` };
            return;
          }
          case Dom0Event.CREATE_FAILED:
            logLines.forEach((l) => options.progress(`  xl: ${l}`));
            outcome = { exitCode: 2, summary: `xl create could not start guest ${guestName}: ${mostTellingLine(logLines)}` };
            return;
          case Dom0Event.FAIL:
            logLines.forEach((l) => options.progress(`  dom0: ${l}`));
            outcome = { exitCode: 2, summary: `dom0 failed: ${detail}` };
            return;
          case Dom0Event.DONE:
            doneGrace = setTimeout(kill, 10_000);
            return;
        }
      }
      const xenVersion = /\(XEN\) Xen version (\S+)/.exec(line);
      if (xenVersion) milestone('Xen up', `(Xen ${xenVersion[1]})`);
      if (/\(XEN\) Panic on CPU|Kernel panic - not syncing/.test(line)) fatalLine ??= line;
      recentLines.push(line);
      if (recentLines.length > 40) recentLines.shift();
    };

    let pending = '';
    qemu.stdout.setEncoding('utf8');
    qemu.stdout.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop()!;
      lines.forEach(onLine);
    });
    qemu.stderr.setEncoding('utf8');
    qemu.stderr.on('data', (chunk: string) => (qemuStderr += chunk));
    qemu.on('error', (err) => {
      outcome ??= { exitCode: 2, summary: `QEMU could not be started: ${err.message}` };
    });
    qemu.on('close', (code, signal) => {
      if (pending) onLine(pending);
      clearTimeout(startupDeadline);
      clearTimeout(runDeadline);
      clearTimeout(doneGrace);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      if (!outcome) {
        options.progress('  last lines of the serial console:');
        recentLines.forEach((l) => options.progress(`  | ${l}`));
        const stderr = qemuStderr.trim().split('\n').filter((l) => l && !/TCG doesn't support requested feature/.test(l));
        const why = fatalLine ?? stderr.pop() ?? `QEMU exited (${signal ?? `code ${code}`})`;
        outcome = { exitCode: 2, summary: `the boot machine stopped before the guest ended: ${why}` };
      }
      resolve({ ...outcome, timings });
    });
  });
}

/** The line of xl's and pygrub's output that best says why: a Python exception, else an error line. */
function mostTellingLine(lines: readonly string[]): string {
  const exception = [...lines].reverse().find((l) => /^[A-Za-z_.]*(Error|Exception)\b/.test(l));
  return exception ?? lines.find((l) => /error/i.test(l)) ?? lines[lines.length - 1] ?? 'no output';
}
