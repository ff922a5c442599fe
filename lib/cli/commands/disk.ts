import { CliIo, UsageError } from '../io';
import { writeKernelDisk } from '../kernel-disk';
import { onePositional, parseOptions } from '../options';

/**
 * `disk KERNEL --out FILE ...`: the raw disk image the construct would snapshot, as a sparse file.
 * The kernel is inspected, then copied into the image through a small buffer: memory stays the
 * same whatever the kernel's size.
 */
export async function diskCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional, options } = parseOptions(args, ['out', 'name', 'args', 'layout', 'size-gib']);
  const kernelPath = onePositional(positional, 'KERNEL');
  const out = options.out;
  if (out === undefined) {
    throw new UsageError('disk needs --out FILE: where to write the raw disk image');
  }
  const disk = await writeKernelDisk(kernelPath, options, out, io);
  if (!disk) {
    return 1;
  }
  const { plan, inspection } = disk;
  io.stdout(
    `wrote ${out}: ${plan.sizeBytes} bytes (${plan.sizeBytes / 2 ** 30} GiB), with a ${plan.filesystemBytes}-byte ext2 filesystem ` +
      `at byte ${plan.filesystemOffset} (grow it over the volume with resize2fs if you need the space)\n` +
      `  ${plan.kernelPath}: ${plan.kernelBytes} bytes (${inspection.format}, ${inspection.architecture ?? 'unknown architecture'})\n` +
      `  /boot/grub/menu.lst:\n${plan.menuLst.replace(/^(?=.)/gm, '    ')}`,
  );
  return 0;
}
