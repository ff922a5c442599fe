/**
 * Kernel inspection: can AWS PV-GRUB boot this kernel file, and for which architecture?
 *
 * PV-GRUB is a Mini-OS guest that loads the kernel with Xen's own domain builder, so the rules
 * here are Xen's: xen/common/libelf/libelf-dominfo.c (which notes make a PV kernel),
 * tools/libs/guest (gzip and Linux bzImage handling, guest type) and stubdom/grub/kexec.c (a
 * 64-bit PV-GRUB boots only 'xen-3.0-x86_64' guests, a 32-bit one only 'xen-3.0-x86_32p').
 * Pure TypeScript on Node builtins, so it runs at synth time, in the CLI and in Lambda.
 */
import { KernelArchitecture } from '../pv-grub';
import { compressionOf, gunzipFirstMember, MAX_INFLATED_KERNEL_BYTES } from './compression';
import { cString, EM_386, EM_X86_64, ElfNote, isElf, KernelFormatError, parseElf } from './elf';
import {
  decodeXenNote,
  isPaeKernel,
  parametersFromGuestInfo,
  parametersFromNotes,
  pvLoaderRefusal,
  unknownRequiredFeatures,
  XEN_ELFNOTE_PHYS32_ENTRY,
  XenNote,
} from './xen-notes';

export type { XenNote } from './xen-notes';
export { MAX_INFLATED_KERNEL_BYTES } from './compression';

/** What inspectKernel found out about a kernel file. */
export interface KernelInspection {
  /** Whether PV-GRUB can boot it. */
  readonly bootable: boolean;
  /** The architecture of the PV-GRUB AKI that boots it (x86_64 or i386), when known. */
  readonly architecture?: KernelArchitecture;
  /** Human-readable format, e.g. 'ELF64 x86-64', 'gzip-compressed ELF64 x86-64', 'Linux bzImage ...'. */
  readonly format: string;
  /** Whether the file as given is gzip-compressed (PV-GRUB decompresses it itself). */
  readonly compressed: boolean;
  /** The guest OS the kernel declares, e.g. 'Mini-OS' or 'linux'. */
  readonly guestOs?: string;
  /** The Xen interface version the kernel declares, e.g. 'xen-3.0'. */
  readonly xenVersion?: string;
  /** The loader the kernel declares, e.g. 'generic'. */
  readonly loader?: string;
  /** The Xen ELF notes found, each once (empty when none). */
  readonly notes: readonly XenNote[];
  /** The legacy `__xen_guest` section string, when the kernel has one. */
  readonly xenGuestInfo?: string;
  /** Things that do not stop PV-GRUB but deserve a look. */
  readonly warnings: readonly string[];
  /** When not bootable: why, and what to do instead. */
  readonly reason?: string;
}

/** Options of inspectKernel. */
export interface InspectKernelOptions {
  /**
   * The most bytes a gzip-compressed kernel may inflate to.
   * @default MAX_INFLATED_KERNEL_BYTES (1 GiB, Xen's own limit)
   */
  readonly maxInflatedBytes?: number;
}

/** Thrown by assertBootableKernel for a kernel PV-GRUB cannot boot; the message says why and what to do. */
export class KernelNotBootableError extends Error {
  public readonly inspection: KernelInspection;

  constructor(inspection: KernelInspection) {
    super(inspection.reason ?? `PV-GRUB cannot boot this ${inspection.format} kernel`);
    this.name = 'KernelNotBootableError';
    this.inspection = inspection;
  }
}

/** What can be booted instead, named in every refusal that is about the kind of kernel. */
const PV_KERNELS =
  "MirageOS 3.8 or earlier (its Mini-OS based xen target), Unikraft's xen platform for x86_64 (PV), Mini-OS, HaLVM, " +
  "rumprun's xen target, or a Linux kernel built with Xen PV support (CONFIG_XEN_PV)";

/** Inspects a kernel file: an ELF, a gzip-compressed ELF or a Linux bzImage. Never throws for bad bytes. */
export function inspectKernel(kernel: Uint8Array, options: InspectKernelOptions = {}): KernelInspection {
  if (!(kernel instanceof Uint8Array)) {
    throw new TypeError(`inspectKernel needs the kernel file's bytes as a Uint8Array or Buffer, but got ${kernel === null ? 'null' : typeof kernel}`);
  }
  return inspectFile(kernel, options.maxInflatedBytes ?? MAX_INFLATED_KERNEL_BYTES, true);
}

/** Inspects the kernel and throws a KernelNotBootableError (with the reason) when PV-GRUB cannot boot it. */
export function assertBootableKernel(kernel: Uint8Array, options: InspectKernelOptions = {}): KernelInspection {
  const inspection = inspectKernel(kernel, options);
  if (!inspection.bootable) {
    throw new KernelNotBootableError(inspection);
  }
  return inspection;
}

/** A multi-line report of an inspection, for people (the CLI's `inspect`). */
export function describeInspection(inspection: KernelInspection): string {
  const lines = [
    `Format:        ${inspection.format}`,
    `Bootable:      ${inspection.bootable ? 'yes, by PV-GRUB' : 'no'}`,
    `Architecture:  ${inspection.architecture ?? 'unknown'}`,
  ];
  const optional: Array<[string, string | undefined]> = [
    ['Guest OS:      ', inspection.guestOs],
    ['Xen version:   ', inspection.xenVersion],
    ['Loader:        ', inspection.loader],
    ['__xen_guest:   ', inspection.xenGuestInfo],
  ];
  lines.push(...optional.filter(([, value]) => value !== undefined).map(([label, value]) => `${label}${value}`));
  if (inspection.notes.length > 0) {
    lines.push('Xen ELF notes:', ...inspection.notes.map((note) => `  ${note.typeName} = ${formatNoteValue(note.value)}`));
  }
  lines.push(...inspection.warnings.map((warning) => `Warning: ${warning}`));
  if (inspection.reason) {
    lines.push(`Reason: ${inspection.reason}`);
  }
  return lines.join('\n');
}

function formatNoteValue(value: XenNote['value']): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Uint8Array) return `<${Buffer.from(value).toString('hex')}>`;
  return `0x${value.toString(16)}`;
}

function refused(format: string, reason: string, compressed = false): KernelInspection {
  return { bootable: false, format, compressed, notes: [], warnings: [], reason };
}

function inspectFile(bytes: Uint8Array, maxInflatedBytes: number, mayBeCompressed: boolean): KernelInspection {
  if (bytes.length === 0) {
    return refused('empty', `The kernel file is empty (0 bytes). Give the kernel image built for Xen PV, e.g. MirageOS's <name>.xen.`);
  }
  if (isElf(bytes)) return inspectElf(bytes);
  if (isBzImage(bytes)) return inspectBzImage(bytes, maxInflatedBytes);
  const compression = compressionOf(bytes);
  if (compression === 'gzip' && mayBeCompressed) {
    let inflated: Uint8Array;
    try {
      inflated = gunzipFirstMember(bytes, maxInflatedBytes);
    } catch (error) {
      return refused('gzip-compressed data', `The kernel file starts with the gzip magic, but ${(error as Error).message}. Give an intact kernel file.`, true);
    }
    const inner = inspectFile(inflated, maxInflatedBytes, false);
    return { ...inner, format: `gzip-compressed ${inner.format}`, compressed: true };
  }
  if (compression && !mayBeCompressed) {
    return refused(`${compression}-compressed data`, `The gzip-compressed kernel holds ${compression}-compressed data, but Xen's loader decompresses only once. Compress the kernel once, with gzip.`);
  }
  if (compression) {
    // Refused rather than accepted with a warning: PV-GRUB could decompress bzip2, lzo or xz, but
    // Node has no decompressor for them, and without the ELF inside neither the architecture (which
    // picks the AKI) nor the Xen notes can be checked.
    return refused(
      `${compression}-compressed data`,
      `The kernel file is ${compression}-compressed, which this library cannot decompress to check its architecture and Xen notes. ` +
        'Give the uncompressed kernel, or recompress it with gzip (PV-GRUB decompresses gzip itself).',
    );
  }
  const head = Buffer.from(bytes.subarray(0, 8)).toString('hex').replace(/(..)/g, '$1 ').trim();
  return refused(
    'unknown',
    `The kernel file (${bytes.length} bytes, starting ${head}) is neither an ELF file, a gzip-compressed one nor a Linux bzImage. ` +
      `Give the Xen PV kernel image itself (an ELF file, such as MirageOS's <name>.xen): ${PV_KERNELS}.`,
  );
}

function inspectElf(bytes: Uint8Array): KernelInspection {
  let elf;
  try {
    elf = parseElf(bytes);
  } catch (error) {
    if (!(error instanceof KernelFormatError)) throw error;
    return refused('corrupt ELF', `The kernel file starts like an ELF file, but ${error.message}. Give the complete, intact kernel file.`);
  }
  const isXen = (note: ElfNote) => note.owner === 'Xen';
  const segmentNotes = elf.notes.segmentNotes.filter(isXen);
  const sectionNotes = elf.notes.sectionNotes.filter(isXen);
  // A note usually sits in both a PT_NOTE segment and a SHT_NOTE section: report it once.
  const byOffset = new Map([...segmentNotes, ...sectionNotes].map((note) => [note.fileOffset, note]));
  const notes = [...byOffset.values()].sort((a, b) => a.fileOffset - b.fileOffset).map(decodeXenNote);
  // Xen reads the segments' notes, then falls back to the sections', then to '__xen_guest'.
  const notesXenReads = (segmentNotes.length > 0 ? segmentNotes : sectionNotes).map(decodeXenNote);
  const guestSection = elf.section('__xen_guest');
  const xenGuestInfo = guestSection ? cString(guestSection) : undefined;
  const parameters = notesXenReads.length > 0
    ? parametersFromNotes(notesXenReads)
    : xenGuestInfo !== undefined ? parametersFromGuestInfo(xenGuestInfo) : undefined;

  const warnings: string[] = [];
  if (notesXenReads.length > 0 && xenGuestInfo !== undefined) {
    warnings.push("The kernel has both Xen ELF notes and a '__xen_guest' section; Xen reads the notes and ignores the section.");
  }
  const ignored = notes.length - notesXenReads.length;
  if (ignored > 0) {
    warnings.push(`${ignored} Xen note(s) lie only in SHT_NOTE sections outside the PT_NOTE segments; Xen reads only the segments' notes, so it ignores them.`);
  }
  const architecture = elf.machine === EM_X86_64 ? KernelArchitecture.X86_64 : elf.machine === EM_386 ? KernelArchitecture.I386 : undefined;
  const found: KernelInspection = {
    bootable: true,
    architecture,
    format: elf.format,
    compressed: false,
    guestOs: parameters?.guestOs,
    xenVersion: parameters?.xenVersion,
    loader: parameters?.loader,
    notes,
    xenGuestInfo,
    warnings,
  };
  const refuse = (reason: string): KernelInspection => ({ ...found, bootable: false, reason });

  if (!architecture) {
    return refuse(`The kernel is an ${elf.format} file, but PV-GRUB on EC2 boots only x86 Xen PV kernels (ELF64 x86-64 or ELF32 i386). Build it for x86_64 Xen PV: ${PV_KERNELS}.`);
  }
  if (!parameters) {
    return refuse(
      `The kernel is an ${elf.format} file without Xen ELF notes or a '__xen_guest' section, so Xen's loader rejects it as "Not a Xen-ELF image": ` +
        `it was not built for Xen PV (a Solo5 hvt/spt/virtio unikernel, a plain Linux vmlinux or an ordinary program looks like this). Give a Xen PV kernel: ${PV_KERNELS}.`,
    );
  }
  const loaderRefusal = pvLoaderRefusal(parameters);
  if (loaderRefusal && parameters.hasPhys32Entry) {
    const what = notesXenReads.every((note) => note.type === XEN_ELFNOTE_PHYS32_ENTRY)
      ? 'its only Xen note is PHYS32_ENTRY, the PVH entry point'
      : 'it has PHYS32_ENTRY, the PVH entry point, but not the PV notes';
    return refuse(
      `The kernel (${elf.format}) is a Xen PVH-only kernel: ${what}. PV-GRUB boots only Xen PV kernels (${loaderRefusal}). ` +
        'MirageOS 3.9 and later build such PVH-only kernels (Solo5-based) for the xen target, and PV-GRUB cannot boot them. ' +
        `Boot a PV kernel instead: ${PV_KERNELS}.`,
    );
  }
  const source = notesXenReads.length > 0 ? 'Xen ELF notes' : "a '__xen_guest' section";
  if (loaderRefusal) {
    return refuse(`The kernel (${elf.format}) has ${source}, but ${loaderRefusal}. Give a Xen PV kernel: ${PV_KERNELS}.`);
  }
  const unknownFeatures = unknownRequiredFeatures(parameters);
  if (unknownFeatures.length > 0) {
    return refuse(
      `The kernel (${elf.format}) requires the Xen feature(s) ${unknownFeatures.join(', ')} in its FEATURES '${parameters.features}', ` +
        "which Xen's loader does not know, so it refuses the kernel. Rebuild it without requiring them.",
    );
  }
  if (architecture === KernelArchitecture.I386 && !isPaeKernel(parameters)) {
    return refuse(
      `The kernel (${elf.format}) is a 32-bit Xen PV kernel without PAE, but the i386 PV-GRUB boots only PAE kernels ("can only boot x86 32 PAE kernels"): ` +
        "the kernel must declare PAE_MODE 'yes' (or PAE=yes in '__xen_guest'). Rebuild it with PAE, or build it for x86_64.",
    );
  }
  return found;
}

/** Linux x86 boot protocol: the setup header magic "HdrS" at 0x202 marks a bzImage. */
function isBzImage(bytes: Uint8Array): boolean {
  return bytes.length >= 0x206 && Buffer.from(bytes.subarray(0x202, 0x206)).toString('latin1') === 'HdrS';
}

/** Setup header offsets (Documentation/arch/x86/boot.rst). */
const SETUP_SECTS = 0x1f1;
const PROTOCOL_VERSION = 0x206;
const XLOADFLAGS = 0x236;
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;
const SETUP_HEADER_END = 0x250;
const XLF_KERNEL_64 = 1;

/**
 * A Linux bzImage, as Xen's bzImage loader reads it: boot protocol 2.08 or later (which added
 * payload_offset and payload_length), the payload at (setup_sects + 1) * 512 + payload_offset,
 * decompressed, must be an ELF with the Xen notes.
 */
function inspectBzImage(bytes: Uint8Array, maxInflatedBytes: number): KernelInspection {
  if (bytes.length < SETUP_HEADER_END) {
    return refused('Linux bzImage', `The kernel file has the Linux bzImage magic "HdrS" but is only ${bytes.length} bytes long, shorter than its setup header (${SETUP_HEADER_END} bytes). Give the complete kernel file.`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(PROTOCOL_VERSION, true);
  const versionText = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  const format = `Linux bzImage (boot protocol ${versionText})`;
  if (version < 0x208) {
    return refused(format, `The Linux bzImage uses boot protocol ${versionText}, but Xen's bzImage loader needs 2.08 or later, which gives the payload's place. Use a newer Linux kernel built with Xen PV support (CONFIG_XEN_PV).`);
  }
  const architecture = version >= 0x20c
    ? (view.getUint16(XLOADFLAGS, true) & XLF_KERNEL_64 ? KernelArchitecture.X86_64 : KernelArchitecture.I386)
    : undefined;
  const payloadStart = (bytes[SETUP_SECTS] + 1) * 512 + view.getUint32(PAYLOAD_OFFSET, true);
  const payloadEnd = payloadStart + view.getUint32(PAYLOAD_LENGTH, true);
  if (payloadEnd > bytes.length) {
    return refused(format, `The Linux bzImage's payload (bytes ${payloadStart} to ${payloadEnd}) runs past the end of the ${bytes.length}-byte file: it is truncated or corrupt. Give the complete kernel file.`);
  }
  const payload = bytes.subarray(payloadStart, payloadEnd);
  const compression = compressionOf(payload);
  if (isElf(payload) || compression === 'gzip') {
    let elf = payload;
    if (compression === 'gzip') {
      try {
        elf = gunzipFirstMember(payload, maxInflatedBytes);
      } catch (error) {
        return refused(`${format} with a gzip-compressed payload`, `The Linux bzImage's payload starts with the gzip magic, but ${(error as Error).message}. Give an intact kernel file.`);
      }
      if (!isElf(elf)) {
        return refused(`${format} with a gzip-compressed payload`, "The Linux bzImage's gzip-compressed payload is not an ELF file, which Xen's bzImage loader needs. Give a Linux kernel built with Xen PV support (CONFIG_XEN_PV).");
      }
    }
    const inner = inspectElf(elf);
    const payloadFormat = compression === 'gzip' ? `gzip-compressed ${inner.format}` : inner.format;
    const warnings = architecture && inner.architecture && architecture !== inner.architecture
      ? [`The bzImage header says ${architecture} but its payload is ${inner.architecture}; the payload decides.`]
      : [];
    return { ...inner, format: `${format} with a ${payloadFormat} payload`, warnings: [...inner.warnings, ...warnings] };
  }
  const payloadKind = compression ? `${compression}-compressed` : 'in an unknown format';
  // Accepted with a warning: PV-GRUB boots Linux kernels built with Xen PV support, and
  // bzImage kernels with such payloads are common; only their Xen notes cannot be checked here.
  const warnings = [
    `The Linux bzImage's payload is ${payloadKind}, which this library cannot decompress, so its Xen notes were not checked: ` +
      'PV-GRUB boots it only if the kernel was built with Xen PV support (CONFIG_XEN_PV).',
  ];
  if (!architecture) {
    warnings.push(`Boot protocol ${versionText} predates 2.12, whose XLF_KERNEL_64 flag tells a 64-bit kernel, so the architecture is unknown: state it explicitly.`);
  } else if (architecture === KernelArchitecture.I386) {
    warnings.push('The i386 PV-GRUB boots only PAE kernels: the kernel must be built with CONFIG_X86_PAE.');
  }
  return { bootable: true, architecture, format: `${format} with a ${payloadKind} payload`, compressed: false, notes: [], warnings };
}
