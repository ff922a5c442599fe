import { describeInspection, inspectKernelFile } from '../../kernel-inspection';
import { CliIo } from '../io';
import { onePositional, parseOptions, withFiles } from '../options';

/**
 * `inspect KERNEL`: whether PV-GRUB can boot the kernel (exit 0) or why not (exit 1). Reads only
 * the kernel's headers and notes; a gzip kernel is inflated as a stream to check its CRC and length.
 */
export async function inspectCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional } = parseOptions(args, []);
  const kernelPath = onePositional(positional, 'KERNEL');
  const inspection = await withFiles(kernelPath, undefined, () => inspectKernelFile(kernelPath));
  io.stdout(describeInspection(inspection) + '\n');
  if (!inspection.bootable) {
    // The report above ends with the reason: say it once.
    io.stderr(`mirage-unikernel-ami: ${kernelPath} cannot be booted by PV-GRUB (see Reason above)\n`);
    return 1;
  }
  return 0;
}
