import * as fs from 'fs';
import * as path from 'path';
import { inspectKernelFile } from '../../kernel-inspection';
import { renderXlConfig } from '../../xen/xl-config';
import { CliIo, UsageError } from '../io';
import { parseOptions, withFiles } from '../options';
import { asUsageError, guestNameFromFile, parseWholeNumber, requireDiskImage } from './guest-options';

/**
 * `xl (KERNEL | --disk IMAGE) --out NAME.xl ...`: an xl configuration for `xl create -c NAME.xl` on a
 * Xen host, booting the kernel directly (as `mirage configure -t xen` wrote it) or the disk through pygrub.
 */
export async function xlCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional, options } = parseOptions(args, ['out', 'name', 'args', 'memory', 'vcpus', 'bridge', 'disk']);
  const out = options.out;
  if (out === undefined) {
    throw new UsageError('xl needs --out NAME.xl: where to write the xl configuration');
  }
  if (positional.length > 1 || (positional.length === 1) === (options.disk !== undefined)) {
    throw new UsageError(
      'give either KERNEL (Xen boots the kernel file directly) or --disk IMAGE (pygrub boots a disk made by ' +
      `mirage-unikernel-ami disk), not ${positional.length === 0 ? 'neither' : 'both'}`,
    );
  }
  let kernel: string | undefined;
  let disk: string | undefined;
  let name: string;
  if (options.disk === undefined) {
    const kernelPath = positional[0];
    const inspection = await withFiles(kernelPath, undefined, () => inspectKernelFile(kernelPath));
    if (!inspection.bootable) {
      io.stderr(`mirage-unikernel-ami: ${kernelPath} is not a Xen PV kernel that PV-GRUB could boot: ${inspection.reason}\n`);
      return 1;
    }
    kernel = path.resolve(kernelPath);
    name = options.name ?? guestNameFromFile(kernelPath, 'kernel');
  } else {
    if (options.args !== undefined) {
      throw new UsageError(
        "--args goes with KERNEL: a disk's kernel arguments are on its menu.lst kernel line (mirage-unikernel-ami disk --args)",
      );
    }
    requireDiskImage(options.disk);
    disk = path.resolve(options.disk);
    name = options.name ?? guestNameFromFile(options.disk, 'disk');
  }
  const config = asUsageError(() =>
    renderXlConfig({
      name,
      kernel,
      cmdline: options.args,
      disk,
      memoryMiB: parseWholeNumber(options.memory, '--memory'),
      vcpus: parseWholeNumber(options.vcpus, '--vcpus'),
      bridge: options.bridge,
    }),
  );
  fs.writeFileSync(out, config);
  io.stdout(`wrote ${out}; on a Xen host (dom0) start the guest with its console attached: xl create -c ${out}\n${config.replace(/^(?=.)/gm, '  ')}`);
  return 0;
}
