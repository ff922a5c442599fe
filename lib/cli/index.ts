/**
 * The `mirage-unikernel-ami` command line: inspect a kernel, build the exact disk image the
 * construct would write, and read an instance's console. Kept apart from bin/ so tests can run it
 * in-process; bin/mirage-unikernel-ami.ts only wires it to the process. Each command lives in
 * commands/, with the option parsing they share in options.ts.
 */
import { DiskImageError } from '../disk-image';
import { diskCommand } from './commands/disk';
import { inspectCommand } from './commands/inspect';
import { CliIo, UsageError } from './io';

export { CliIo, UsageError } from './io';

const USAGE = `Usage:
  mirage-unikernel-ami inspect KERNEL
  mirage-unikernel-ami disk KERNEL --out FILE [--name NAME] [--args "ARGS"] [--layout whole|mbr] [--size-gib N]
  mirage-unikernel-ami console INSTANCE_ID [--region REGION]

inspect   says whether AWS PV-GRUB can boot KERNEL (exit 0) or why not (exit 1)
disk      writes the raw disk image the construct would snapshot, as a sparse file
console   prints the console output EC2 keeps for an instance (the unikernel's greeting)
`;

/** Runs the command line and returns the process exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'inspect':
        return await inspectCommand(rest, io);
      case 'disk':
        return await diskCommand(rest, io);
      case 'console':
        // Loaded only here: the AWS SDK takes about a second to load, and no other command needs it.
        return await (await import('./commands/console')).consoleCommand(rest, io);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.stdout(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'; expected inspect, disk or console (see --help)`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof DiskImageError) {
      io.stderr(`mirage-unikernel-ami: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
