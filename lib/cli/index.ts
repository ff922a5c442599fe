/**
 * The `mirage-unikernel-ami` command line: inspect a kernel, build the exact disk image the
 * construct would write, and read an instance's console. Kept apart from bin/ so tests can run it
 * in-process; bin/mirage-unikernel-ami.ts only wires it to the process.
 */
import * as fs from 'fs';
import * as path from 'path';
import { EC2Client, GetConsoleOutputCommand } from '@aws-sdk/client-ec2';
import { buildDiskImage, DiskImageError, DiskLayout, validateUnikernelName, writeSparseFile } from '../disk-image';
import { describeInspection, inspectKernel } from '../kernel-inspection';

/** Where the command writes; tests pass collectors. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Creates the EC2 client for `console`; tests pass one pointed at a mock. */
  readonly ec2Client?: (region?: string) => EC2Client;
}

/** A mistake in how the command was called or in its input: reported as one line, no stack trace. */
export class UsageError extends Error {}

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
        return inspectCommand(rest, io);
      case 'disk':
        return diskCommand(rest, io);
      case 'console':
        return await consoleCommand(rest, io);
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

function inspectCommand(args: readonly string[], io: CliIo): number {
  const { positional } = parseOptions(args, []);
  const kernelPath = onePositional(positional, 'KERNEL');
  const inspection = inspectKernel(readKernel(kernelPath));
  io.stdout(describeInspection(inspection) + '\n');
  if (!inspection.bootable) {
    io.stderr(`mirage-unikernel-ami: ${kernelPath} cannot be booted by PV-GRUB: ${inspection.reason}\n`);
    return 1;
  }
  return 0;
}

function diskCommand(args: readonly string[], io: CliIo): number {
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

async function consoleCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional, options } = parseOptions(args, ['region']);
  const instanceId = onePositional(positional, 'INSTANCE_ID');
  if (!/^i-[0-9a-f]{8,17}$/.test(instanceId)) {
    throw new UsageError(`'${instanceId}' is not an EC2 instance id (i-0123456789abcdef0)`);
  }
  const ec2 = (io.ec2Client ?? ((region?: string) => new EC2Client({ region })))(options.region);
  // Latest=true asks for the most recent output; EC2 keeps the last 64 KB of a PV console.
  const result = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
  if (!result.Output) {
    io.stderr(`mirage-unikernel-ami: ${instanceId} has no console output yet; EC2 publishes it a few minutes after boot\n`);
    return 1;
  }
  io.stdout(Buffer.from(result.Output, 'base64').toString('utf8'));
  return 0;
}

interface ParsedOptions {
  readonly positional: string[];
  readonly options: { [name: string]: string | undefined };
}

function parseOptions(args: readonly string[], known: readonly string[]): ParsedOptions {
  const positional: string[] = [];
  const options: { [name: string]: string } = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [flag, inlineValue] = arg.slice(2).split(/=(.*)/s, 2);
    if (!known.includes(flag)) {
      throw new UsageError(`unknown option --${flag}` + (known.length ? `; expected one of ${known.map((k) => '--' + k).join(', ')}` : ''));
    }
    const value = inlineValue ?? args[++i];
    if (value === undefined) {
      throw new UsageError(`--${flag} needs a value`);
    }
    options[flag] = value;
  }
  return { positional, options };
}

function onePositional(positional: readonly string[], what: string): string {
  if (positional.length !== 1) {
    throw new UsageError(`expected exactly one ${what}, got ${positional.length === 0 ? 'none' : positional.join(' ')}`);
  }
  return positional[0];
}

function readKernel(kernelPath: string): Buffer {
  try {
    return fs.readFileSync(kernelPath);
  } catch (err) {
    throw new UsageError(`cannot read kernel ${kernelPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** `hello.xen` (or `hello.xen.gz`) -> `hello`, the name MirageOS gives `register` for that unikernel. */
function defaultName(kernelPath: string): string {
  const name = path.basename(kernelPath).replace(/\.gz$/, '').replace(/\.(xen|elf)$/, '');
  try {
    validateUnikernelName(name);
  } catch (err) {
    throw new UsageError(`the kernel file name gives no usable --name (${(err as Error).message}); pass --name NAME`);
  }
  return name;
}

function parseLayout(layout: string | undefined): DiskLayout {
  switch (layout) {
    case undefined:
    case 'whole':
      return DiskLayout.WHOLE_VOLUME;
    case 'mbr':
      return DiskLayout.MBR_PARTITION;
    default:
      throw new UsageError(`--layout must be 'whole' (filesystem on the whole volume) or 'mbr' (first MBR partition), got '${layout}'`);
  }
}

function parseSizeGiB(size: string | undefined): number {
  if (size === undefined) {
    return 1;
  }
  if (!/^[1-9][0-9]*$/.test(size) || Number(size) > 16384) {
    throw new UsageError(`--size-gib must be a whole number of GiB from 1 to 16384 (the EBS limit), got '${size}'`);
  }
  return Number(size);
}
