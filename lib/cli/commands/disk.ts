import { buildDiskImage, writeSparseFile } from '../../disk-image';
import { inspectKernel } from '../../kernel-inspection';
import { CliIo, UsageError } from '../io';
import { defaultName, onePositional, parseLayout, parseOptions, parseSizeGiB, readKernel } from '../options';

/** `disk KERNEL --out FILE ...`: the raw disk image the construct would snapshot, as a sparse file. */
export function diskCommand(args: readonly string[], io: CliIo): number {
  const { positional, options } = parseOptions(args, ['out', 'name', 'args', 'layout', 'size-gib']);
  const kernelPath = onePositional(positional, 'KERNEL');
  const out = options.out;
  if (out === undefined) {
    throw new UsageError('disk needs --out FILE: where to write the raw disk image');
  }
  const kernel = readKernel(kernelPath);
  const inspection = inspectKernel(kernel);
  if (!inspection.bootable) {
    io.stderr(`mirage-unikernel-ami: ${kernelPath} cannot be booted by PV-GRUB: ${inspection.reason}\n`);
    return 1;
  }
  for (const warning of inspection.warnings) {
    io.stderr(`warning: ${warning}\n`);
  }
  const name = options.name ?? defaultName(kernelPath);
  const image = buildDiskImage({
    kernel,
    name,
    kernelArgs: options.args ?? '',
    layout: parseLayout(options.layout),
    volumeSizeGiB: parseSizeGiB(options['size-gib']),
  });
  writeSparseFile(image, out);
  io.stdout(
    `wrote ${out}: ${image.sizeBytes} bytes (${image.sizeBytes / 2 ** 30} GiB), ${image.nonZeroBytes} bytes non-zero\n` +
      `  ${image.kernelPath} (${inspection.format}, ${inspection.architecture ?? 'unknown architecture'})\n` +
      `  /boot/grub/menu.lst:\n${image.menuLst.replace(/^(?=.)/gm, '    ')}`,
  );
  return 0;
}
