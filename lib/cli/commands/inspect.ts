import { describeInspection, inspectKernel } from '../../kernel-inspection';
import { CliIo } from '../io';
import { onePositional, parseOptions, readKernel } from '../options';

/** `inspect KERNEL`: whether PV-GRUB can boot the kernel (exit 0) or why not (exit 1). */
export function inspectCommand(args: readonly string[], io: CliIo): number {
  const { positional } = parseOptions(args, []);
  const kernelPath = onePositional(positional, 'KERNEL');
  const inspection = inspectKernel(readKernel(kernelPath));
  io.stdout(describeInspection(inspection) + '\n');
  if (!inspection.bootable) {
    // The report above ends with the reason: say it once.
    io.stderr(`mirage-unikernel-ami: ${kernelPath} cannot be booted by PV-GRUB (see Reason above)\n`);
    return 1;
  }
  return 0;
}
