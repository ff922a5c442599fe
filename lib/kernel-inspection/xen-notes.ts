/**
 * Xen's reading of a kernel's Xen ELF notes or legacy `__xen_guest` string, and the checks its
 * loader makes before it starts a PV guest. Sources: xen/include/public/elfnote.h (note numbers),
 * xen/common/libelf/libelf-dominfo.c (decoding and the PV check), tools/libs/guest
 * xg_dom_elfloader.c (guest type) and stubdom/grub/kexec.c (what PV-GRUB accepts).
 */
import { cString, ElfNote } from './elf';

/** One Xen ELF note (owner "Xen"), decoded as Xen's libelf decodes it. */
export interface XenNote {
  /** The note type number (XEN_ELFNOTE_*). */
  readonly type: number;
  /** The XEN_ELFNOTE_* name without the prefix, e.g. 'GUEST_OS', or 'unknown (0x13)'. */
  readonly typeName: string;
  /**
   * A string for string notes; for numeric notes a number (1, 2 or 4 bytes) or a bigint
   * (8 bytes); the raw descriptor for any other size or an unknown type.
   */
  readonly value: string | number | bigint | Uint8Array;
}

export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** The note types of xen/include/public/elfnote.h and whether libelf reads each as a string. */
const XEN_NOTE_TYPES: { readonly [type: number]: { readonly name: string; readonly isString: boolean } } = {
  0: { name: 'INFO', isString: true },
  1: { name: 'ENTRY', isString: false },
  2: { name: 'HYPERCALL_PAGE', isString: false },
  3: { name: 'VIRT_BASE', isString: false },
  4: { name: 'PADDR_OFFSET', isString: false },
  5: { name: 'XEN_VERSION', isString: true },
  6: { name: 'GUEST_OS', isString: true },
  7: { name: 'GUEST_VERSION', isString: true },
  8: { name: 'LOADER', isString: true },
  9: { name: 'PAE_MODE', isString: true },
  10: { name: 'FEATURES', isString: true },
  11: { name: 'BSD_SYMTAB', isString: true },
  12: { name: 'HV_START_LOW', isString: false },
  13: { name: 'L1_MFN_VALID', isString: false },
  14: { name: 'SUSPEND_CANCEL', isString: false },
  15: { name: 'INIT_P2M', isString: false },
  16: { name: 'MOD_START_PFN', isString: false },
  17: { name: 'SUPPORTED_FEATURES', isString: false },
  [XEN_ELFNOTE_PHYS32_ENTRY]: { name: 'PHYS32_ENTRY', isString: false },
};

/** The feature names libelf knows (elf_xen_feature_names); a required ('!') unknown one fails the parse. */
const XEN_FEATURE_NAMES = [
  'writable_page_tables',
  'writable_descriptor_tables',
  'auto_translated_physmap',
  'supervisor_mode_kernel',
  'pae_pgdir_above_4gb',
  'hvm_callback_vector',
  'dom0',
];

export function decodeXenNote(note: ElfNote): XenNote {
  const known = XEN_NOTE_TYPES[note.type];
  if (!known) {
    return { type: note.type, typeName: `unknown (0x${note.type.toString(16)})`, value: note.desc };
  }
  return { type: note.type, typeName: known.name, value: known.isString ? cString(note.desc) : decodeNumber(note.desc) };
}

/** libelf's elf_note_numeric: a little-endian number of 1, 2, 4 or 8 bytes. */
function decodeNumber(desc: Uint8Array): number | bigint | Uint8Array {
  const view = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  switch (desc.length) {
    case 1: return view.getUint8(0);
    case 2: return view.getUint16(0, true);
    case 4: return view.getUint32(0, true);
    case 8: return view.getBigUint64(0, true);
    default: return desc;
  }
}

/** libelf's PAE kinds: only the PAE ones give the guest type 'xen-3.0-x86_32p'. */
export enum PaeMode {
  NONE = 'none',
  YES = 'yes',
  EXTENDED_CR3 = 'extended-cr3',
  BIMODAL = 'bimodal',
}

/** What Xen's loader takes from the notes or the `__xen_guest` string (struct elf_dom_parms). */
export interface XenGuestParameters {
  readonly xenVersion?: string;
  readonly guestOs?: string;
  readonly loader?: string;
  readonly features?: string;
  readonly pae: PaeMode;
  readonly hasPhys32Entry: boolean;
}

/** The parameters of the Xen notes; a later note of a type overrides an earlier one, as in libelf. */
export function parametersFromNotes(notes: readonly XenNote[]): XenGuestParameters {
  const text = (name: string) => {
    const values = notes.filter((note) => note.typeName === name && typeof note.value === 'string');
    return values.length ? (values[values.length - 1].value as string) : undefined;
  };
  const paeMode = text('PAE_MODE');
  return {
    xenVersion: text('XEN_VERSION'),
    guestOs: text('GUEST_OS'),
    loader: text('LOADER'),
    features: text('FEATURES'),
    pae: paeMode === 'yes' ? PaeMode.EXTENDED_CR3 : paeMode?.includes('bimodal') ? PaeMode.BIMODAL : PaeMode.NONE,
    hasPhys32Entry: notes.some((note) => note.type === XEN_ELFNOTE_PHYS32_ENTRY),
  };
}

/** The parameters of a legacy `__xen_guest` string: comma-separated NAME=VALUE pairs (libelf elf_xen_parse_guest_info). */
export function parametersFromGuestInfo(guestInfo: string): XenGuestParameters {
  const fields = new Map<string, string>();
  for (const pair of guestInfo.split(',')) {
    const equals = pair.indexOf('=');
    fields.set(equals === -1 ? pair : pair.slice(0, equals), equals === -1 ? '' : pair.slice(equals + 1));
  }
  const pae = fields.get('PAE');
  return {
    xenVersion: fields.get('XEN_VER'),
    guestOs: fields.get('GUEST_OS'),
    loader: fields.get('LOADER'),
    features: fields.get('FEATURES'),
    pae: pae === 'yes[extended-cr3]' ? PaeMode.EXTENDED_CR3 : pae?.startsWith('yes') ? PaeMode.YES : PaeMode.NONE,
    hasPhys32Entry: false,
  };
}

/**
 * libelf's elf_xen_note_check for a PV guest: the LOADER starts with 'generic' or the GUEST_OS
 * with 'linux', and the XEN_VERSION starts with 'xen-3.0'. Returns what fails, or undefined.
 */
export function pvLoaderRefusal(parameters: XenGuestParameters): string | undefined {
  const { loader, guestOs, xenVersion } = parameters;
  if (!loader?.startsWith('generic') && !guestOs?.startsWith('linux')) {
    return `Xen loads only PV kernels built for the generic loader or Linux kernels, and this one has LOADER ${quoted(loader)} and GUEST_OS ${quoted(guestOs)}`;
  }
  if (!xenVersion?.startsWith('xen-3.0')) {
    return `Xen loads only PV kernels built for the Xen 3.0 interface (XEN_VERSION 'xen-3.0'), and this one has XEN_VERSION ${quoted(xenVersion)}`;
  }
  return undefined;
}

/** libelf's elf_xen_parse_features: a required feature ('!name') that Xen does not know fails the whole parse. */
export function unknownRequiredFeatures(parameters: XenGuestParameters): string[] {
  return (parameters.features ?? '')
    .split('|')
    .filter((feature) => feature.startsWith('!') && !XEN_FEATURE_NAMES.includes(feature.slice(1)))
    .map((feature) => feature.slice(1));
}

/**
 * The 32-bit PV-GRUB boots only guests of type 'xen-3.0-x86_32p' (stubdom/grub/kexec.c: "can only
 * boot x86 32 PAE kernels"); xc_dom_guest_type gives that type only to i386 kernels that declare
 * PAE (PAE_MODE 'yes' or 'bimodal', or PAE=yes in `__xen_guest`).
 */
export function isPaeKernel(parameters: XenGuestParameters): boolean {
  return parameters.pae !== PaeMode.NONE;
}

function quoted(value: string | undefined): string {
  return value === undefined ? '(none)' : `'${value}'`;
}
