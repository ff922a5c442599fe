/** Option parsing and the argument checks the commands share; mistakes are UsageErrors. */
import * as path from 'path';
import { DiskLayout, validateUnikernelName } from '../disk-image';
import { fileErrorReason, UsageError } from './io';

export interface ParsedOptions {
  readonly positional: string[];
  readonly options: { [name: string]: string | undefined };
}

export function parseOptions(args: readonly string[], known: readonly string[]): ParsedOptions {
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

export function onePositional(positional: readonly string[], what: string): string {
  if (positional.length !== 1) {
    throw new UsageError(`expected exactly one ${what}, got ${positional.length === 0 ? 'none' : positional.join(' ')}`);
  }
  return positional[0];
}

/**
 * Runs `work` on the kernel file (and the output file, if any): a file that cannot be opened,
 * read or written is reported as one line naming the file, not as a stack trace.
 */
export async function withFiles<T>(kernelPath: string, out: string | undefined, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const { code, path: failedPath, syscall } = (err ?? {}) as NodeJS.ErrnoException;
    // Node's own file errors (ENOENT, EACCES, EISDIR, ...); a read on an open descriptor names no path.
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
      const writing = out !== undefined && (failedPath === out || syscall === 'write' || syscall === 'ftruncate');
      throw new UsageError(writing ? `cannot write ${out}: ${fileErrorReason(err)}` : `cannot read kernel ${kernelPath}: ${fileErrorReason(err)}`);
    }
    throw err;
  }
}

/** `hello.xen` (or `hello.xen.gz`) -> `hello`, the name MirageOS gives `register` for that unikernel. */
export function defaultName(kernelPath: string): string {
  const name = path.basename(kernelPath).replace(/\.gz$/, '').replace(/\.(xen|elf)$/, '');
  try {
    validateUnikernelName(name);
  } catch (err) {
    throw new UsageError(`the kernel file name gives no usable --name (${(err as Error).message}); pass --name NAME`);
  }
  return name;
}

export function parseLayout(layout: string | undefined): DiskLayout {
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

export function parseSizeGiB(size: string | undefined): number {
  if (size === undefined) {
    return 1;
  }
  if (!/^[1-9][0-9]*$/.test(size) || Number(size) > 16384) {
    throw new UsageError(`--size-gib must be a whole number of GiB from 1 to 16384 (the EBS limit), got '${size}'`);
  }
  return Number(size);
}
