/**
 * Xen's PV rules applied to an ELF kernel: xen/common/libelf/libelf-dominfo.c (which notes make a
 * PV kernel, read from PT_NOTE segments, else SHT_NOTE sections, else `__xen_guest`) and
 * stubdom/grub/kexec.c (a 64-bit PV-GRUB boots only 'xen-3.0-x86_64' guests, a 32-bit one only
 * the PAE guests 'xen-3.0-x86_32p').
 */
import { KernelArchitecture } from '../pv-grub';
import { cString, EM_386, EM_X86_64, ElfFile, ElfNote, KernelFormatError, readElf } from './elf';
import { Reads } from './reads';
import { KernelInspection } from './types';
import {
  decodeXenNote,
  isPaeKernel,
  parametersFromGuestInfo,
  parametersFromNotes,
  pvLoaderRefusal,
  unknownRequiredFeatures,
  XEN_ELFNOTE_PHYS32_ENTRY,
} from './xen-notes';

/** What can be booted instead, named in every refusal that is about the kind of kernel. */
export const PV_KERNELS =
  "MirageOS 3.8 or earlier (its Mini-OS based xen target), Unikraft's xen platform for x86_64 (PV), Mini-OS, HaLVM, " +
  "rumprun's xen target, or a Linux kernel built with Xen PV support (CONFIG_XEN_PV)";

/** An inspection of a kernel PV-GRUB cannot boot, found out before any Xen note was read. */
export function refused(format: string, reason: string, compressed = false): KernelInspection {
  return { bootable: false, format, compressed, notes: [], warnings: [], reason };
}

/** Inspects an ELF kernel; a corrupt one is refused with the broken structure named. */
export function* inspectElf(): Reads<KernelInspection> {
  let elf: ElfFile;
  try {
    elf = yield* readElf();
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
  const xenGuestInfo = elf.xenGuestSection ? cString(elf.xenGuestSection) : undefined;
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
