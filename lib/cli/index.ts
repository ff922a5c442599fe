/**
 * The `mirage-unikernel-ami` command line: inspect a kernel, build the exact disk image the
 * construct would write, and read an instance's console. Kept apart from bin/ so tests can run it
 * in-process; bin/mirage-unikernel-ami.ts only wires it to the process. Each command lives in
 * commands/, with the option parsing they share in options.ts.
 */
import { CliIo, fileErrorReason, isFileSystemError, UsageError } from './io';

export { CliIo, UsageError } from './io';

const USAGE = `Usage:
  mirage-unikernel-ami inspect KERNEL
  mirage-unikernel-ami disk KERNEL --out FILE [--name NAME] [--args "ARGS"] [--layout whole|mbr] [--size-gib N]
  mirage-unikernel-ami console INSTANCE_ID [--region REGION]
  mirage-unikernel-ami xl (KERNEL | --disk IMAGE) --out NAME.xl [--name NAME] [--args "ARGS"] [--memory MiB] [--vcpus N] [--bridge BR]
  mirage-unikernel-ami boot (KERNEL | --disk IMAGE | --xl NAME.xl) [--name NAME] [--args "ARGS"] [--layout whole|mbr] [--size-gib N]
                            [--memory MiB] [--timeout S]

inspect   says whether AWS PV-GRUB can boot KERNEL (exit 0) or why not (exit 1)
disk      writes the raw disk image the construct would snapshot, as a sparse file
console   prints the console output EC2 keeps for an instance (the unikernel's greeting)
xl        writes an xl configuration for 'xl create -c NAME.xl' on a Xen host: KERNEL booted directly,
          or a disk image booted through pygrub
boot      boots KERNEL's disk (built as the construct would), a disk image or an xl configuration under
          real Xen inside QEMU, on a Linux machine without Xen; the guest's console goes to stdout.
          Exit 0: the guest shut itself down; 1: it crashed or outlived --timeout (default 60 s);
          2: it could not be booted. Needs Debian's qemu-system-x86, xen-utils-4.17, xenstore-utils
          and busybox-static
`;

/** Runs the command line and returns the process exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      // Each command's module is loaded when it runs, so --help loads none of them. console's matters
      // most: the AWS SDK takes about a second to load, and no other command needs it.
      case 'inspect':
        return await (await import('./commands/inspect')).inspectCommand(rest, io);
      case 'disk':
        return await (await import('./commands/disk')).diskCommand(rest, io);
      case 'console':
        return await (await import('./commands/console')).consoleCommand(rest, io);
      case 'xl':
        return await (await import('./commands/xl')).xlCommand(rest, io);
      case 'boot':
        return await (await import('./commands/boot')).bootCommand(rest, io);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.stdout(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'; expected inspect, disk, console, xl or boot (see --help)`);
    }
  } catch (err) {
    // The disk-image writer's errors are about the input too; loaded only on this path, like the commands.
    const { DiskImageError } = await import('../disk-image');
    if (err instanceof UsageError || err instanceof DiskImageError) {
      io.stderr(`mirage-unikernel-ami: ${err.message}\n`);
      return 2;
    }
    if (isFileSystemError(err)) {
      // A path the user gave that cannot be read or written (e.g. --out in a missing folder).
      io.stderr(`mirage-unikernel-ami: cannot ${err.syscall} ${err.path}: ${fileErrorReason(err)}\n`);
      return 2;
    }
    throw err;
  }
}
