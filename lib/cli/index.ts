/**
 * The `mirage-unikernel-ami` command line: inspect a kernel, build the exact disk image the
 * construct would write, read an instance's console, follow a build, and list a stack's builds. Kept apart from bin/ so tests can run it
 * in-process; bin/mirage-unikernel-ami.ts only wires it to the process. Each command lives in
 * commands/, with the option parsing they share in options.ts.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CliIo, fileErrorReason, isFileSystemError, UsageError } from './io';

export { CliIo, UsageError } from './io';

/** Each command's synopsis and what it does: `COMMAND --help` prints its own, `--help` all of them. */
export const COMMAND_HELP: { readonly [command: string]: { readonly synopsis: string; readonly description: string } } = {
  inspect: {
    synopsis: 'mirage-unikernel-ami inspect KERNEL',
    description: 'says whether AWS PV-GRUB can boot KERNEL (exit 0) or why not (exit 1)',
  },
  disk: {
    synopsis: 'mirage-unikernel-ami disk KERNEL --out FILE [--name NAME] [--args "ARGS"] [--layout whole|mbr] [--size-gib N]',
    description: 'writes the raw disk image the construct would snapshot, as a sparse file',
  },
  console: {
    synopsis: 'mirage-unikernel-ami console INSTANCE_ID [--region REGION]',
    description: 'prints the console output EC2 keeps for an instance (the unikernel\'s greeting); needs AWS\n' +
      'credentials allowed ec2:GetConsoleOutput',
  },
  watch: {
    synopsis: 'mirage-unikernel-ami watch STACK [CONSTRUCT_PATH] [--region REGION] [--interval S] [--timeout MIN]\n' +
      'mirage-unikernel-ami watch --build BUILD_ID [STACK] [--region REGION] [--interval S] [--timeout MIN]',
    description: 'follows a build live, for both strategies: its stage, the time per stage and an estimate of\n' +
      'what is left (a progress bar on a terminal, timestamped lines otherwise), and what CloudFormation\n' +
      'does meanwhile (a rollback, a Delete). CONSTRUCT_PATH (or a logical id) picks one of several\n' +
      'MirageUnikernelAmi resources. Exit 0: the build completed and CloudFormation holds it; 1: it failed\n' +
      'or was rolled back (the reason and where the full log is are printed). Needs only read permissions:\n' +
      'cloudformation:DescribeStacks, DescribeStackResources, DescribeStackResource, DescribeStackEvents,\n' +
      'logs:FilterLogEvents, ec2:DescribeImages, DescribeSnapshots, DescribeInstances',
  },
  builds: {
    synopsis: 'mirage-unikernel-ami builds STACK [--remove-failed] [--region REGION]',
    description: 'lists the builds of a stack and everything each left (AMIs, snapshots, instances, volumes,\n' +
      'staged objects) with its state, marking the build CloudFormation holds. --remove-failed removes\n' +
      'builds that provably failed, by the handler\'s own rules; never the build CloudFormation holds, a\n' +
      'retained one, nor any while the stack is in progress. Listing needs cloudformation:DescribeStacks,\n' +
      'DescribeStackResources, ec2:DescribeImages, DescribeSnapshots, DescribeInstances, DescribeVolumes\n' +
      'and s3:ListBucket; --remove-failed adds ec2:DeregisterImage, DeleteSnapshot, TerminateInstances,\n' +
      'DeleteVolume, s3:GetObject and s3:DeleteObject',
  },
  xl: {
    synopsis: 'mirage-unikernel-ami xl (KERNEL | --disk IMAGE) --out NAME.xl [--name NAME] [--args "ARGS"] [--memory MiB] [--vcpus N] [--bridge BR]',
    description: 'writes an xl configuration for \'xl create -c NAME.xl\' on a Xen host: KERNEL booted directly,\n' +
      'or a disk image booted through pygrub',
  },
  boot: {
    synopsis: 'mirage-unikernel-ami boot (KERNEL | --disk IMAGE | --xl NAME.xl) [--name NAME] [--args "ARGS"] [--layout whole|mbr] [--size-gib N]\n' +
      '                          [--memory MiB] [--timeout S]',
    description: 'boots KERNEL\'s disk (built as the construct would), a disk image or an xl configuration under\n' +
      'real Xen inside QEMU, on a Linux machine without Xen; the guest\'s console goes to stdout.\n' +
      'Exit 0: the guest shut itself down; 1: it crashed or outlived --timeout (default 60 s);\n' +
      '2: it could not be booted. Needs Debian\'s qemu-system-x86, xen-utils-4.17, xenstore-utils\n' +
      'and busybox-static. The first boot builds a dom0 machine (about a minute) and caches it',
  },
};

const COMMANDS = Object.keys(COMMAND_HELP);

function indent(text: string, by: string): string {
  return text.split('\n').map((line) => by + line).join('\n');
}

const USAGE = 'Usage:\n' +
  COMMANDS.map((command) => indent(COMMAND_HELP[command].synopsis, '  ')).join('\n') + '\n' +
  '  mirage-unikernel-ami --version\n\n' +
  COMMANDS.map((command) => command.padEnd(10) + COMMAND_HELP[command].description.split('\n').join('\n' + ' '.repeat(10))).join('\n') + '\n' +
  '\nCOMMAND --help prints one command\'s usage.\n';

function commandUsage(command: string): string {
  const help = COMMAND_HELP[command];
  return `Usage:\n${indent(help.synopsis, '  ')}\n\n${help.description}\n`;
}

/**
 * Whether the arguments ask for help: `--help` or `-h` standing as an option of its own, not as the
 * value of the option before it (`--args -h` passes -h to the unikernel).
 */
function asksForHelp(args: readonly string[]): boolean {
  return args.some((arg, i) => (arg === '--help' || arg === '-h') && !(i > 0 && /^--[^=]+$/.test(args[i - 1]) && args[i - 1] !== '--help'));
}

/**
 * The package's version, from the package.json above this file: found by walking up, so that the
 * compiled file, the TypeScript source and a bundled CLI all read the one the package ships.
 */
export function packageVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'mirage-unikernel-ami' && manifest.version) {
        return manifest.version;
      }
    }
    if (path.dirname(dir) === dir) {
      throw new Error(`no package.json of mirage-unikernel-ami above ${__dirname}`);
    }
  }
}

/** Runs the command line and returns the process exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && COMMAND_HELP[command] && asksForHelp(rest)) {
    io.stdout(commandUsage(command));
    return 0;
  }
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
      case 'watch':
        return await (await import('./commands/watch')).watchCommand(rest, io);
      case 'builds':
        return await (await import('./commands/builds')).buildsCommand(rest, io);
      case 'xl':
        return await (await import('./commands/xl')).xlCommand(rest, io);
      case 'boot':
        return await (await import('./commands/boot')).bootCommand(rest, io);
      case '--version':
      case '-V':
      case 'version':
        io.stdout(`mirage-unikernel-ami ${packageVersion()}\n`);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.stdout(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'; expected inspect, disk, console, watch, builds, xl or boot (see --help)`);
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
