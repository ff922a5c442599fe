/**
 * xl configuration files for a Xen PV guest: written for `xl create -c NAME.xl`, and read back for
 * `boot --xl`. The syntax is libxlutil's (xen tools/libs/util/libxlu_cfg_l.l and libxlu_cfg_y.y):
 * `key = value` statements ended by a newline or `;`, `#` comments to the end of the line, a value
 * being a NUMBER (`[0-9][0-9a-fx]*`), a STRING or a `[ ... ]` list of values.
 *
 * A STRING is `"` or `'` quoted and may not hold a raw newline. libxlu's dequoting
 * (`xlu__cfgl_dequote`) turns `\"`, `\'` and `\\` into the character and C escapes such as `\n`
 * into control characters; Xen 4.17's rejects any other escaped character, and its `\x` escape
 * skips a character (test/xen/xl-config.test.ts shows both with libxlutil itself). So the writer
 * escapes only `"` and `\`, and refuses every control character rather than escape it.
 */
import { validateKernelArgs } from '../disk-image';

/** A value that cannot be written to (or was not read from) an xl configuration file. */
export class XlConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XlConfigError';
  }
}

/** What the guest is. Give either `kernel` (direct PV boot) or `disk` (boot through pygrub). */
export interface XlConfigOptions {
  /** The domain name, as `xl list` and `xl console NAME` show it. */
  readonly name: string;
  /**
   * Kernel file that Xen's domain builder loads directly (`type = "pv"`, `kernel`).
   * Relative paths are resolved by xl against its working directory, so give an absolute one.
   * @default - no kernel: `disk` must be given
   */
  readonly kernel?: string;
  /**
   * Kernel command line for a direct boot (with a disk, the arguments are on menu.lst's kernel line).
   * @default ''
   */
  readonly cmdline?: string;
  /**
   * Disk image or block device that the guest boots through pygrub, which reads /boot/grub/menu.lst
   * from it as EC2's PV-GRUB does; attached read-only as xvda.
   * @default - no disk: `kernel` must be given
   */
  readonly disk?: string;
  /**
   * Guest memory in MiB.
   * @default 256 (what `mirage configure -t xen` wrote)
   */
  readonly memoryMiB?: number;
  /**
   * Virtual CPUs.
   * @default 1
   */
  readonly vcpus?: number;
  /**
   * Linux bridge in dom0 for one network interface (`vif = [ "bridge=BR" ]`).
   * @default - no network interface
   */
  readonly bridge?: string;
}

export const DEFAULT_MEMORY_MIB = 256;
export const DEFAULT_VCPUS = 1;

/** 1 TiB: a larger number is far more likely bytes or KiB given by mistake than a real guest. */
const MAX_MEMORY_MIB = 1024 * 1024;
/** A sanity bound; EC2's PV instance types had at most 32 vCPUs. */
const MAX_VCPUS = 128;
/** xl takes a domain name or a numeric domain id wherever it names a domain, so a name must not be all digits. */
const DOMAIN_NAME = /^(?![0-9]+$)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/**
 * The guest's disk: a raw image, read-only (the guest has no reason to write the disk that holds its
 * kernel, and booting must not change the image that is deployed), as xvda. `target=` comes last: it
 * takes the rest of the spec, commas included (Xen's xl-disk-configuration). No `script=`: the
 * default hotplug script attaches a file through a loop device and a block device as it is.
 */
const DISK_SPEC_PREFIX = 'format=raw,vdev=xvda,access=r,target=';
/** Linux interface names are at most 15 bytes (IFNAMSIZ 16); ',' and '=' would break the vif spec. */
const BRIDGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/**
 * Quotes a string for an xl configuration file so that libxlutil reads back exactly `value`.
 * @throws XlConfigError for control characters (newline included), which a STRING cannot hold safely
 */
export function quoteXlString(value: string, what = 'value'): string {
  const bad = firstUnwritableCharacter(value);
  if (bad !== undefined) {
    throw new XlConfigError(
      `${what} ${JSON.stringify(value)} cannot be written to an xl configuration file: character ${bad.index} is ` +
      `${bad.description}. xl's parser reads a quoted string up to the end of its line and turns escapes into control ` +
      'characters inconsistently, so control characters (newline, tab, ...) and unpaired surrogates are refused.',
    );
  }
  return `"${value.replace(/[\\"]/g, (c) => '\\' + c)}"`;
}

function firstUnwritableCharacter(value: string): { index: number; description: string } | undefined {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) {
      return { index: i, description: `the control character U+${code.toString(16).toUpperCase().padStart(4, '0')}` };
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = value.charCodeAt(i + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return { index: i, description: 'an unpaired UTF-16 surrogate (not valid UTF-8)' };
    }
  }
  return undefined;
}

/**
 * The text of an xl configuration file for a PV guest that boots `kernel` directly, or `disk` through pygrub.
 * @throws XlConfigError naming the bad value and what to give instead
 */
export function renderXlConfig(options: XlConfigOptions): string {
  const { name, kernel, disk, cmdline = '', bridge } = options;
  const memoryMiB = options.memoryMiB ?? DEFAULT_MEMORY_MIB;
  const vcpus = options.vcpus ?? DEFAULT_VCPUS;
  validateDomainName(name);
  validateWholeNumber(memoryMiB, 'memory', 1, MAX_MEMORY_MIB, 'MiB');
  validateWholeNumber(vcpus, 'vcpus', 1, MAX_VCPUS, 'virtual CPUs');
  if ((kernel === undefined) === (disk === undefined)) {
    throw new XlConfigError(
      'Give exactly one of kernel (Xen loads the kernel file directly) or disk (pygrub boots the disk image); ' +
      `got ${kernel === undefined ? 'neither' : 'both'}.`,
    );
  }
  if (bridge !== undefined && !BRIDGE_NAME.test(bridge)) {
    throw new XlConfigError(
      `Invalid bridge ${JSON.stringify(bridge)}: give a Linux interface name of 1 to 15 letters, digits, '_', '.' and '-' (e.g. xenbr0).`,
    );
  }

  const lines = [`name = ${quoteXlString(name, 'name')}`, 'type = "pv"'];
  if (kernel !== undefined) {
    validatePath(kernel, 'kernel');
    validateCmdline(cmdline);
    lines.push(
      '# Xen loads the kernel and hands it cmdline, as PV-GRUB hands it the arguments on menu.lst\'s kernel line.',
      `kernel = ${quoteXlString(kernel, 'kernel path')}`,
      `cmdline = ${quoteXlString(cmdline, 'cmdline')}`,
    );
  } else {
    validatePath(disk!, 'disk');
    if (cmdline !== '') {
      throw new XlConfigError(
        'A disk boot takes its kernel arguments from the kernel line of the disk\'s /boot/grub/menu.lst: ' +
        'build the disk with them (mirage-unikernel-ami disk --args) instead of giving a cmdline.',
      );
    }
    lines.push(
      '# pygrub reads /boot/grub/menu.lst from the disk, as EC2\'s PV-GRUB does, and boots its default entry (-q: no menu).',
      'bootloader = "pygrub"',
      'bootloader_args = [ "-q" ]',
      `disk = [ ${quoteXlString(DISK_SPEC_PREFIX + disk, 'disk path')} ]`,
    );
  }
  lines.push(`memory = ${memoryMiB}`, `vcpus = ${vcpus}`, '# Keep a crashed guest for inspection (xl dmesg, xl destroy).', 'on_crash = "preserve"');
  if (bridge !== undefined) {
    lines.push(`vif = [ ${quoteXlString(`bridge=${bridge}`, 'bridge')} ]`);
  }
  return lines.join('\n') + '\n';
}

/** @throws XlConfigError unless `name` can be an xl domain name. */
export function validateDomainName(name: string): void {
  if (typeof name !== 'string' || !DOMAIN_NAME.test(name)) {
    throw new XlConfigError(
      `Invalid domain name ${JSON.stringify(name)}: use 1 to 64 letters, digits, '.', '_' and '-', starting with a letter ` +
      'or digit and not all digits (xl reads an all-digit name as a domain id).',
    );
  }
}

function validateWholeNumber(value: number, what: string, min: number, max: number, unit: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new XlConfigError(`Invalid ${what} ${value}: give a whole number of ${unit} from ${min} to ${max}.`);
  }
}

function validatePath(path: string, what: string): void {
  if (typeof path !== 'string' || path.length === 0) {
    throw new XlConfigError(`The ${what} path is empty: give the ${what} file's path.`);
  }
  quoteXlString(path, `${what} path`);
}

/** The same rule as the construct's kernelArgs, so arguments tried here are valid in the AMI's menu.lst too. */
function validateCmdline(cmdline: string): void {
  try {
    validateKernelArgs(cmdline);
  } catch (err) {
    throw new XlConfigError((err as Error).message);
  }
}

/** A value read from an xl configuration file: NUMBERs are kept as their text, as libxlutil keeps them. */
export type XlValue = string | readonly string[];

type Token =
  | { readonly kind: 'ident' | 'number' | 'string'; readonly text: string; readonly line: number }
  | { readonly kind: '=' | '+=' | ',' | '[' | ']' | ';' | 'newline' | 'end'; readonly line: number };

/**
 * Reads an xl configuration file into its settings, with libxlutil's lexical rules. Lists of lists and
 * `+=` are refused, and of the escapes only `\"`, `\'` and `\\` are read (the writer never writes others).
 * @throws XlConfigError with the line number of the first problem
 */
export function parseXlConfig(text: string): Map<string, XlValue> {
  const tokens = tokenize(text);
  const settings = new Map<string, XlValue>();
  let i = 0;
  const fail = (message: string): never => {
    throw new XlConfigError(`xl configuration line ${tokens[i].line}: ${message}`);
  };
  const skipNewlines = () => {
    while (tokens[i].kind === 'newline') i++;
  };
  while (tokens[i].kind !== 'end') {
    const token = tokens[i];
    if (token.kind === 'newline' || token.kind === ';') {
      i++;
      continue;
    }
    if (token.kind !== 'ident') fail('expected a setting name');
    const name = (token as { text: string }).text;
    i++;
    if (tokens[i].kind === '+=') fail(`'${name} +=' is not supported here: give the whole value with '='`);
    if (tokens[i].kind !== '=') fail(`expected '=' after ${name}`);
    i++;
    let value: XlValue;
    const first = tokens[i];
    if (first.kind === 'string' || first.kind === 'number') {
      value = first.text;
      i++;
    } else if (first.kind === '[') {
      i++;
      skipNewlines();
      const items: string[] = [];
      while (tokens[i].kind !== ']') {
        const item = tokens[i];
        if (item.kind === '[') fail('lists of lists are not supported here');
        if (item.kind !== 'string' && item.kind !== 'number') fail(`expected a string or number in the list of ${name}`);
        items.push((item as { text: string }).text);
        i++;
        skipNewlines();
        if (tokens[i].kind === ',') {
          i++;
          skipNewlines();
        } else if (tokens[i].kind !== ']') {
          fail(`expected ',' or ']' in the list of ${name}`);
        }
      }
      i++;
      value = items;
    } else {
      fail(`expected a value for ${name}`);
    }
    if (tokens[i].kind !== 'newline' && tokens[i].kind !== ';' && tokens[i].kind !== 'end') {
      fail(`expected the end of the line after the value of ${name}`);
    }
    settings.set(name, value!);
  }
  return settings;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    let match: RegExpExecArray | null;
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === '\n') {
      tokens.push({ kind: 'newline', line });
      line++;
      i++;
    } else if (c === '#') {
      // libxlu's comment rule is '#.*\n': a comment must end with a newline.
      const end = text.indexOf('\n', i);
      if (end < 0) throw new XlConfigError(`xl configuration line ${line}: a comment must end with a newline`);
      i = end;
    } else if ((match = /^[a-z][_0-9a-z]*/.exec(rest))) {
      tokens.push({ kind: 'ident', text: match[0], line });
      i += match[0].length;
    } else if ((match = /^[0-9][0-9a-fx]*/.exec(rest))) {
      tokens.push({ kind: 'number', text: match[0], line });
      i += match[0].length;
    } else if (rest.startsWith('+=')) {
      tokens.push({ kind: '+=', line });
      i += 2;
    } else if ('=,[];'.includes(c)) {
      tokens.push({ kind: c as '=' | ',' | '[' | ']' | ';', line });
      i++;
    } else if (c === '"' || c === "'") {
      const [value, length] = readQuoted(text, i, line);
      tokens.push({ kind: 'string', text: value, line });
      i += length;
    } else {
      throw new XlConfigError(`xl configuration line ${line}: unexpected character ${JSON.stringify(c)}`);
    }
  }
  tokens.push({ kind: 'end', line });
  return tokens;
}

/** A quoted string from text[start] (the quote) to its closing quote: the value and the length of its source. */
function readQuoted(text: string, start: number, line: number): [string, number] {
  const quote = text[start];
  let value = '';
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === quote) {
      return [value, i + 1 - start];
    }
    if (c === '\n') break;
    if (c === '\\') {
      const escaped = text[++i];
      if (escaped !== '"' && escaped !== "'" && escaped !== '\\') {
        throw new XlConfigError(
          `xl configuration line ${line}: the escape \\${escaped ?? ''} is not supported here (only \\", \\' and \\\\ are)`,
        );
      }
      value += escaped;
    } else {
      value += c;
    }
  }
  const opening = text.slice(start, start + 20).split('\n')[0];
  throw new XlConfigError(`xl configuration line ${line}: the string starting ${opening} has no closing ${quote} on its line`);
}

/** Settings that `renderXlConfig` writes, and so the only ones `readXlConfig` understands. */
const KNOWN_SETTINGS = ['name', 'type', 'kernel', 'cmdline', 'bootloader', 'bootloader_args', 'disk', 'memory', 'vcpus', 'on_crash', 'vif'];

/**
 * Reads back a configuration written by `renderXlConfig` (or one with the same settings).
 * @throws XlConfigError for syntax errors, settings it does not know, and values the writer would refuse
 */
export function readXlConfig(text: string): XlConfigOptions {
  const settings = parseXlConfig(text);
  for (const key of settings.keys()) {
    if (!KNOWN_SETTINGS.includes(key)) {
      throw new XlConfigError(
        `The setting '${key}' is not one that mirage-unikernel-ami xl writes (${KNOWN_SETTINGS.join(', ')}); remove it or write the configuration with mirage-unikernel-ami xl.`,
      );
    }
  }
  const text1 = (key: string): string | undefined => {
    const value = settings.get(key);
    if (value !== undefined && typeof value !== 'string') throw new XlConfigError(`'${key}' must be a single value, not a list.`);
    return value;
  };
  const list = (key: string): readonly string[] | undefined => {
    const value = settings.get(key);
    if (value !== undefined && typeof value === 'string') throw new XlConfigError(`'${key}' must be a list: ${key} = [ "..." ].`);
    return value;
  };
  const number = (key: string): number | undefined => {
    const value = text1(key);
    if (value !== undefined && !/^[0-9]+$/.test(value)) throw new XlConfigError(`'${key}' must be a decimal number, got ${JSON.stringify(value)}.`);
    return value === undefined ? undefined : Number(value);
  };
  const name = text1('name');
  if (name === undefined) throw new XlConfigError("The configuration has no 'name'.");
  const type = text1('type');
  if (type !== undefined && type !== 'pv') throw new XlConfigError(`Only PV guests are supported (type = "pv"), got type = ${JSON.stringify(type)}.`);
  const bootloader = text1('bootloader');
  if (bootloader !== undefined && bootloader !== 'pygrub') throw new XlConfigError(`Only bootloader = "pygrub" is supported, got ${JSON.stringify(bootloader)}.`);
  const disks = list('disk') ?? [];
  if (disks.length > 1) throw new XlConfigError(`Only one disk is supported, got ${disks.length}.`);
  const disk = disks.length === 1 ? diskTarget(disks[0]) : undefined;
  if (disk !== undefined && bootloader === undefined) {
    throw new XlConfigError('A disk without bootloader = "pygrub" is not supported: the guest boots either a kernel file or its disk through pygrub.');
  }
  const vifs = list('vif') ?? [];
  if (vifs.length > 1) throw new XlConfigError(`Only one vif is supported, got ${vifs.length}.`);
  let bridge: string | undefined;
  if (vifs.length === 1) {
    const match = /^bridge=(.*)$/.exec(vifs[0]);
    if (!match) throw new XlConfigError(`Only a vif of the form "bridge=BR" is supported, got ${JSON.stringify(vifs[0])}.`);
    bridge = match[1];
  }
  const options: XlConfigOptions = {
    name,
    kernel: text1('kernel'),
    cmdline: text1('cmdline'),
    disk,
    memoryMiB: number('memory'),
    vcpus: number('vcpus'),
    bridge,
  };
  renderXlConfig(options); // refuses what the writer would refuse
  return options;
}

/** The target of the disk spec the writer writes (target= is last and takes the rest, commas included). */
function diskTarget(spec: string): string {
  if (!spec.startsWith(DISK_SPEC_PREFIX)) {
    throw new XlConfigError(`Only the disk spec "${DISK_SPEC_PREFIX}PATH" is supported, got ${JSON.stringify(spec)}.`);
  }
  return spec.slice(DISK_SPEC_PREFIX.length);
}
