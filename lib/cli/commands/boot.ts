import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { bootGuest } from '../../xen/boot';
import { readXlConfig, renderXlConfig, XlConfigOptions } from '../../xen/xl-config';
import { CliIo, UsageError } from '../io';
import { writeKernelDisk } from '../kernel-disk';
import { parseOptions } from '../options';
import { asUsageError, guestNameFromFile, parseWholeNumber, requireDiskImage } from './guest-options';

/** Options that describe the disk built from KERNEL, so they make no sense with --disk or --xl. */
const DISK_OPTIONS = ['args', 'layout', 'size-gib'] as const;

/**
 * `boot (KERNEL | --disk IMAGE | --xl CONFIG) ...`: boots the guest under real Xen inside QEMU.
 * Given KERNEL it first builds the very disk the construct would snapshot (writeKernelDisk, shared
 * with `disk`) and boots that through pygrub. The guest's console goes to stdout, progress to stderr.
 * Exit 0: the guest shut itself down; 1: it crashed, rebooted or outlived --timeout; 2: it could not be booted.
 */
export async function bootCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional, options } = parseOptions(args, ['disk', 'xl', 'name', 'args', 'layout', 'size-gib', 'memory', 'timeout']);
  const sources = [positional.length > 0 ? 'KERNEL' : undefined, options.disk && '--disk', options.xl && '--xl'].filter(Boolean);
  if (positional.length > 1 || sources.length !== 1) {
    throw new UsageError(`give one of KERNEL, --disk IMAGE or --xl CONFIG to boot, got ${sources.length === 0 ? 'none' : sources.join(' and ')}`);
  }
  const memoryMiB = parseWholeNumber(options.memory, '--memory');
  const timeoutSeconds = parseWholeNumber(options.timeout, '--timeout');
  if (timeoutSeconds === 0) {
    throw new UsageError('--timeout must be at least 1 second');
  }
  if (positional.length === 0) {
    const given = DISK_OPTIONS.filter((option) => options[option] !== undefined).map((option) => `--${option}`);
    if (given.length > 0) {
      throw new UsageError(`${given.join(', ')} describe the disk built from KERNEL; ${options.disk ? 'an existing disk image' : 'an xl configuration'} already has them`);
    }
  }

  let workDir: string | undefined;
  try {
    let guest: XlConfigOptions;
    if (options.xl !== undefined) {
      if (options.name !== undefined || memoryMiB !== undefined) {
        throw new UsageError('--name and --memory come from the xl configuration; edit it instead');
      }
      guest = asUsageError(() => readXlConfig(readText(options.xl!)));
    } else if (options.disk !== undefined) {
      requireDiskImage(options.disk);
      guest = { name: options.name ?? guestNameFromFile(options.disk, 'disk'), disk: options.disk, memoryMiB };
    } else {
      const kernelPath = positional[0];
      const name = options.name ?? guestNameFromFile(kernelPath, 'kernel');
      asUsageError(() => renderXlConfig({ name, disk: '/dev/null', memoryMiB })); // refuse a bad name or memory before building
      workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-disk-'));
      const image = path.join(workDir, `${name}.img`);
      const disk = await writeKernelDisk(kernelPath, { ...options, name }, image, io);
      if (!disk) return 2;
      const menuLines = disk.plan.menuLst.split('\n').filter((line) => /^(root|kernel) /.test(line));
      io.stderr(`built the disk the construct would write (${disk.plan.layout} layout); its menu.lst says: ${menuLines.join('; ')}\n`);
      guest = { name, disk: image, memoryMiB };
    }
    asUsageError(() => renderXlConfig(guest));
    const result = await bootGuest({
      guest,
      timeoutSeconds,
      console: (text) => io.stdout(text),
      progress: (line) => io.stderr(line + '\n'),
    });
    io.stderr(`mirage-unikernel-ami: ${result.summary}\n`);
    return result.exitCode;
  } finally {
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read xl configuration ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
