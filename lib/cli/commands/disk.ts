import { CliIo, UsageError } from '../io';
import { writeKernelDisk } from '../kernel-disk';
import { onePositional, parseOptions } from '../options';

/** `disk KERNEL --out FILE ...`: the raw disk image the construct would snapshot, as a sparse file. */
export function diskCommand(args: readonly string[], io: CliIo): number {
  const { positional, options } = parseOptions(args, ['out', 'name', 'args', 'layout', 'size-gib']);
  const kernelPath = onePositional(positional, 'KERNEL');
  const out = options.out;
  if (out === undefined) {
    throw new UsageError('disk needs --out FILE: where to write the raw disk image');
  }
  const disk = writeKernelDisk(kernelPath, options, out, io);
  if (!disk) {
    return 1;
  }
  const { image, inspection } = disk;
  io.stdout(
    `wrote ${out}: ${image.sizeBytes} bytes (${image.sizeBytes / 2 ** 30} GiB), ${image.nonZeroBytes} bytes non-zero\n` +
      `  ${image.kernelPath} (${inspection.format}, ${inspection.architecture ?? 'unknown architecture'})\n` +
      `  /boot/grub/menu.lst:\n${image.menuLst.replace(/^(?=.)/gm, '    ')}`,
  );
  return 0;
}
