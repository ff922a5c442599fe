/**
 * A bounds-checked reader for the parts of an ELF file that Xen's loader looks at: the header,
 * the note segments and sections, and the section names (for `__xen_guest`). Every read is
 * checked, so a truncated or corrupt file gives a KernelFormatError that names the broken
 * structure instead of a RangeError from a DataView.
 */

/** A structure of the kernel file that is missing or runs past its end. */
export class KernelFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelFormatError';
  }
}

export const EM_386 = 3;
export const EM_X86_64 = 62;

const MACHINE_NAMES: { readonly [machine: number]: string } = {
  [EM_386]: 'i386',
  [EM_X86_64]: 'x86-64',
  8: 'MIPS',
  20: 'PowerPC',
  21: 'PowerPC64',
  22: 's390',
  40: 'ARM',
  183: 'AArch64',
  243: 'RISC-V',
};

const PT_NOTE = 4;
const SHT_NOTE = 7;
const SHT_NOBITS = 8;
const SHN_UNDEF = 0;
const SHN_XINDEX = 0xffff;
const PN_XNUM = 0xffff;

/** One ELF note: its owner, type and descriptor, and where its header sits in the file. */
export interface ElfNote {
  readonly owner: string;
  readonly type: number;
  readonly desc: Uint8Array;
  readonly fileOffset: number;
}

/** The notes of an ELF file, split the way Xen's libelf reads them. */
export interface ElfNotes {
  /** Notes of PT_NOTE segments (Xen reads these first). */
  readonly segmentNotes: readonly ElfNote[];
  /** Notes of SHT_NOTE sections (Xen falls back to these when no segment has a Xen note). */
  readonly sectionNotes: readonly ElfNote[];
}

export interface ElfFile {
  readonly bits: 32 | 64;
  readonly machine: number;
  /** e.g. 'ELF64 x86-64'. */
  readonly format: string;
  readonly notes: ElfNotes;
  /** The contents of the section named `name` (up to its end), or undefined when there is none. */
  section(name: string): Uint8Array | undefined;
}

interface Range {
  readonly offset: number;
  readonly size: number;
}

interface SectionHeader extends Range {
  readonly nameOffset: number;
  readonly type: number;
}

/** Whether the bytes start with the ELF magic \x7fELF. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** Parses the ELF header, notes and section headers; throws KernelFormatError when they are corrupt. */
export function parseElf(bytes: Uint8Array): ElfFile {
  const reader = new BoundedReader(bytes);
  const elfClass = reader.u8(4, 'ELF identification (EI_CLASS)');
  const data = reader.u8(5, 'ELF identification (EI_DATA)');
  if (elfClass !== 1 && elfClass !== 2) {
    throw new KernelFormatError(`the ELF class byte is ${elfClass}, neither 1 (ELF32) nor 2 (ELF64)`);
  }
  const bits = elfClass === 1 ? 32 : 64;
  if (data !== 1) {
    // Every x86 ELF is little-endian; a big-endian one is for another machine.
    throw new KernelFormatError(`the ELF${bits} file is ${data === 2 ? 'big-endian' : `of data encoding ${data}`}, not little-endian as every x86 kernel is`);
  }
  const machine = reader.u16(18, 'ELF header (e_machine)');
  const format = `ELF${bits} ${MACHINE_NAMES[machine] ?? `machine ${machine}`}`;
  const header = bits === 64
    ? { phoff: reader.u64(32, 'ELF header (e_phoff)'), shoff: reader.u64(40, 'ELF header (e_shoff)'), at: 54 }
    : { phoff: reader.u32(28, 'ELF header (e_phoff)'), shoff: reader.u32(32, 'ELF header (e_shoff)'), at: 42 };
  const phentsize = reader.u16(header.at, 'ELF header (e_phentsize)');
  let phnum = reader.u16(header.at + 2, 'ELF header (e_phnum)');
  const shentsize = reader.u16(header.at + 4, 'ELF header (e_shentsize)');
  let shnum = reader.u16(header.at + 6, 'ELF header (e_shnum)');
  let shstrndx = reader.u16(header.at + 8, 'ELF header (e_shstrndx)');

  const sectionHeader = (index: number): SectionHeader => {
    const at = header.shoff + index * shentsize;
    const what = `section header ${index}`;
    reader.range(at, bits === 64 ? 64 : 40, what);
    return bits === 64
      ? { nameOffset: reader.u32(at, what), type: reader.u32(at + 4, what), offset: reader.u64(at + 24, what), size: reader.u64(at + 32, what) }
      : { nameOffset: reader.u32(at, what), type: reader.u32(at + 4, what), offset: reader.u32(at + 16, what), size: reader.u32(at + 20, what) };
  };
  if (header.shoff !== 0) {
    checkEntrySize(shentsize, bits === 64 ? 64 : 40, 'e_shentsize');
    // With 0xffff or more of them, the real counts and the string table index sit in section header 0.
    const at = header.shoff;
    if (shnum === 0) shnum = sectionHeader(0).size;
    if (phnum === PN_XNUM) phnum = reader.u32(at + (bits === 64 ? 44 : 28), 'section header 0 (sh_info)');
    if (shstrndx === SHN_XINDEX) shstrndx = reader.u32(at + (bits === 64 ? 40 : 24), 'section header 0 (sh_link)');
    reader.range(header.shoff, shnum * shentsize, `section header table of ${shnum} entries`);
  } else {
    shnum = 0;
  }

  const segmentNotes: ElfNote[] = [];
  if (phnum > 0) {
    checkEntrySize(phentsize, bits === 64 ? 56 : 32, 'e_phentsize');
    reader.range(header.phoff, phnum * phentsize, `program header table of ${phnum} entries`);
    for (let index = 0; index < phnum; index++) {
      const at = header.phoff + index * phentsize;
      const what = `program header ${index}`;
      reader.range(at, bits === 64 ? 56 : 32, what);
      if (reader.u32(at, what) !== PT_NOTE) continue;
      const offset = bits === 64 ? reader.u64(at + 8, what) : reader.u32(at + 4, what);
      const size = bits === 64 ? reader.u64(at + 32, what) : reader.u32(at + 16, what);
      // Xen's libelf skips note segments at offset 0: some binutils versions wrote them that way.
      if (offset === 0) continue;
      segmentNotes.push(...readNotes(reader, { offset, size }, `note segment (program header ${index})`));
    }
  }

  const sections = Array.from({ length: shnum }, (_, index) => sectionHeader(index));
  const sectionNotes: ElfNote[] = [];
  sections.forEach((section, index) => {
    if (index !== SHN_UNDEF && section.type === SHT_NOTE) {
      sectionNotes.push(...readNotes(reader, section, `note section ${index}`));
    }
  });

  const sectionName = (section: SectionHeader): string | undefined => {
    const table = sections[shstrndx];
    if (shstrndx === SHN_UNDEF || !table || section.nameOffset >= table.size) return undefined;
    const names = reader.range(table.offset, table.size, 'section name table');
    return cString(names.subarray(section.nameOffset));
  };

  return {
    bits,
    machine,
    format,
    notes: { segmentNotes, sectionNotes },
    section(name: string) {
      const found = sections.find((section, index) => index !== SHN_UNDEF && section.type !== SHT_NOBITS && sectionName(section) === name);
      return found ? reader.range(found.offset, found.size, `section ${name}`) : undefined;
    },
  };
}

/** Reads the notes of one segment or section: 4-byte namesz, descsz, type; name and desc padded to 4 bytes. */
function readNotes(reader: BoundedReader, region: Range, what: string): ElfNote[] {
  const bytes = reader.range(region.offset, region.size, what);
  const inner = new BoundedReader(bytes);
  const notes: ElfNote[] = [];
  let at = 0;
  while (at + 12 <= bytes.length) {
    const nameSize = inner.u32(at, `${what}: note header`);
    const descSize = inner.u32(at + 4, `${what}: note header`);
    const type = inner.u32(at + 8, `${what}: note header`);
    const nameAt = at + 12;
    const descAt = nameAt + align4(nameSize);
    const name = inner.range(nameAt, nameSize, `${what}: name of the note at offset ${region.offset + at}`);
    const desc = inner.range(descAt, descSize, `${what}: descriptor of the note at offset ${region.offset + at}`);
    notes.push({ owner: cString(name), type, desc, fileOffset: region.offset + at });
    at = descAt + align4(descSize);
  }
  return notes;
}

function checkEntrySize(actual: number, minimum: number, field: string): void {
  if (actual < minimum) {
    throw new KernelFormatError(`the ELF header's ${field} is ${actual}, smaller than the ${minimum}-byte entries it describes`);
  }
}

function align4(value: number): number {
  return Math.ceil(value / 4) * 4;
}

/** The bytes up to the first NUL (or all of them), as Latin-1 text: Xen's note strings are C strings. */
export function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.buffer, bytes.byteOffset, end === -1 ? bytes.length : end).toString('latin1');
}

/** Little-endian reads that throw a KernelFormatError naming the structure when it runs past the end. */
class BoundedReader {
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  range(offset: number, size: number, what: string): Uint8Array {
    if (offset + size > this.bytes.length) {
      throw new KernelFormatError(
        `${what} (offset ${offset}, ${size} bytes) runs past the end of the ${this.bytes.length}-byte data: the file is truncated or corrupt`,
      );
    }
    return this.bytes.subarray(offset, offset + size);
  }

  u8(offset: number, what: string): number {
    this.range(offset, 1, what);
    return this.view.getUint8(offset);
  }

  u16(offset: number, what: string): number {
    this.range(offset, 2, what);
    return this.view.getUint16(offset, true);
  }

  u32(offset: number, what: string): number {
    this.range(offset, 4, what);
    return this.view.getUint32(offset, true);
  }

  /** A 64-bit offset or size; one beyond 2^53 cannot lie inside any file, so it is out of range too. */
  u64(offset: number, what: string): number {
    this.range(offset, 8, what);
    const value = this.view.getBigUint64(offset, true);
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }
}
