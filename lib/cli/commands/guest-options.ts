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

/** Where the ext2 superblock's magic number lies: the superblock starts at byte 1024, its s_magic at 56. */
const EXT2_MAGIC_OFFSET = 1024 + 56;
const EXT2_MAGIC = 0xef53;
/** The MBR boot signature 55 AA, in the last two bytes of the first sector. */
const MBR_SIGNATURE_OFFSET = 510;

/**
 * A --disk IMAGE that is not there, or is no disk image at all (neither an MBR nor an ext2
 * filesystem on the whole volume, the two layouts `disk` writes), is the user's mistake: said in one
 * line before a configuration is written or Xen spends a minute booting nothing.
 */
export function requireDiskImage(file: string): void {
  if (!fs.existsSync(file)) {
    throw new UsageError(`cannot read disk image ${file}: ENOENT`);
  }
  const head = Buffer.alloc(EXT2_MAGIC_OFFSET + 2);
  let read: number;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      read = fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new UsageError(`cannot read disk image ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const mbr = read >= MBR_SIGNATURE_OFFSET + 2 && head[MBR_SIGNATURE_OFFSET] === 0x55 && head[MBR_SIGNATURE_OFFSET + 1] === 0xaa;
  const ext2 = read === head.length && head.readUInt16LE(EXT2_MAGIC_OFFSET) === EXT2_MAGIC;
  if (!mbr && !ext2) {
    throw new UsageError(
      `${file} is not a disk image: it has neither an MBR nor an ext2 filesystem (make one with mirage-unikernel-ami disk KERNEL --out ${path.basename(file)})`,
    );
  }
}
