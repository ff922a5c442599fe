/** Options `xl` and `boot` share about the guest. */
import * as fs from 'fs';
import * as path from 'path';
import { validateDomainName, XlConfigError } from '../../xen/xl-config';
import { UsageError } from '../io';
import { defaultName } from '../options';

/** A whole number option, or undefined when not given (the writer's default then applies). */
export function parseWholeNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (!/^[0-9]+$/.test(value)) {
    throw new UsageError(`${flag} must be a whole number, got '${value}'`);
  }
  return Number(value);
}

/**
 * The domain name when no --name is given: `hello.xen` -> `hello` (as `disk` names the unikernel),
 * `hello.img` -> `hello`.
 */
export function guestNameFromFile(file: string, kind: 'kernel' | 'disk'): string {
  const name = kind === 'kernel' ? defaultName(file) : path.basename(file).replace(/\.(img|raw)$/, '');
  try {
    validateDomainName(name);
  } catch (err) {
    throw new UsageError(`the ${kind} file name gives no usable domain name (${(err as Error).message}); pass --name NAME`);
  }
  return name;
}

/** Runs the xl writer's validation, turning its errors into the CLI's usage errors. */
export function asUsageError<T>(action: () => T): T {
  try {
    return action();
  } catch (err) {
    if (err instanceof XlConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** A --disk IMAGE that is not there is the user's mistake, said before anything is built or written. */
export function requireDiskImage(file: string): void {
  if (!fs.existsSync(file)) {
    throw new UsageError(`cannot read disk image ${file}: ENOENT`);
  }
}
