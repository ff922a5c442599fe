/**
 * A bounds-checked reader for the parts of an ELF file that Xen's loader looks at: the header,
 * the note segments and sections, and the section names (for `__xen_guest`). It reads only those
 * (see reads.ts), in ascending batches, so its time does not grow with the kernel's size. Every
 * read is checked, so a truncated or corrupt file gives a KernelFormatError that names the broken
 * structure instead of a RangeError from a DataView.
 */
import { ReadRequest, Reads } from './reads';

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
  /** The contents of the `__xen_guest` section (up to its end), when there is one. */
  readonly xenGuestSection?: Uint8Array;
}

interface Range {
  readonly offset: number;
  readonly size: number;
}

interface SectionHeader extends Range {
  readonly nameOffset: number;
  readonly type: number;
}

/** The legacy section a pre-notes Xen kernel describes itself in. */
const XEN_GUEST_SECTION = '__xen_guest';

/**
 * No structure this parser reads is larger in any kernel: a note segment, a section header table,
 * a section name table. A corrupt header that claims more is refused instead of read.
 */
export const MAX_STRUCTURE_BYTES = 16 * 2 ** 20;

/** Whether the bytes start with the ELF magic \x7fELF. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** A structure to read, and what to call it when it is missing. */
interface Wanted extends ReadRequest {
  readonly what: string;
}

/** Reads a batch of whole structures; one that runs past the end of the data is a KernelFormatError naming it. */
function* readStructures(wanted: readonly Wanted[]): Reads<BoundedReader[]> {
  for (const { offset, length, what } of wanted) {
    if (length > MAX_STRUCTURE_BYTES) {
      throw new KernelFormatError(`${what} (offset ${offset}) is ${length} bytes, more than any kernel's (${MAX_STRUCTURE_BYTES}): the file is corrupt`);
    }
  }
  const results = yield wanted.map(({ offset, length }) => ({ offset, length }));
  return wanted.map(({ offset, length, what }, i) => {
    const bytes = results.bytes[i];
    if (bytes.length < length) {
      throw new KernelFormatError(
        `${what} (offset ${offset}, ${length} bytes) runs past the end of the ${results.size}-byte data: the file is truncated or corrupt`,
      );
    }
    return new BoundedReader(bytes, offset, results.size);
  });
}

/**
 * Reads the ELF header, notes and section headers, and the `__xen_guest` section if there is one;
 * throws KernelFormatError when they are corrupt. Reads go in ascending batches (header; program
 * headers; their notes and the section headers; section notes and names; `__xen_guest`), so a
 * reader that can only go forward (a gzip stream) restarts as seldom as it can.
 */
export function* readElf(): Reads<ElfFile> {
  const headerRead = yield [{ offset: 0, length: 64 }];
  const reader = new BoundedReader(headerRead.bytes[0], 0, headerRead.size);
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
  const sectionHeaderBytes = bits === 64 ? 64 : 40;
  const sectionHeader = (table: BoundedReader, index: number): SectionHeader => {
    const at = header.shoff + index * shentsize;
    const what = `section header ${index}`;
    return bits === 64
      ? { nameOffset: table.u32(at, what), type: table.u32(at + 4, what), offset: table.u64(at + 24, what), size: table.u64(at + 32, what) }
      : { nameOffset: table.u32(at, what), type: table.u32(at + 4, what), offset: table.u32(at + 16, what), size: table.u32(at + 20, what) };
  };

  if (header.shoff !== 0) {
    checkEntrySize(shentsize, sectionHeaderBytes, 'e_shentsize');
    // With 0xffff or more of them, the real counts and the string table index sit in section header 0.
    if (shnum === 0 || phnum === PN_XNUM || shstrndx === SHN_XINDEX) {
      const [first] = yield* readStructures([{ offset: header.shoff, length: sectionHeaderBytes, what: 'section header 0' }]);
      if (shnum === 0) shnum = sectionHeader(first, 0).size;
      if (phnum === PN_XNUM) phnum = first.u32(header.shoff + (bits === 64 ? 44 : 28), 'section header 0 (sh_info)');
      if (shstrndx === SHN_XINDEX) shstrndx = first.u32(header.shoff + (bits === 64 ? 40 : 24), 'section header 0 (sh_link)');
    }
  } else {
    shnum = 0;
  }

  const noteSegments: Array<Range & { readonly index: number }> = [];
  if (phnum > 0) {
    checkEntrySize(phentsize, bits === 64 ? 56 : 32, 'e_phentsize');
    const [table] = yield* readStructures([{ offset: header.phoff, length: phnum * phentsize, what: `program header table of ${phnum} entries` }]);
    for (let index = 0; index < phnum; index++) {
      const at = header.phoff + index * phentsize;
      const what = `program header ${index}`;
      if (table.u32(at, what) !== PT_NOTE) continue;
      const offset = bits === 64 ? table.u64(at + 8, what) : table.u32(at + 4, what);
      const size = bits === 64 ? table.u64(at + 32, what) : table.u32(at + 16, what);
      // Xen's libelf skips note segments at offset 0: some binutils versions wrote them that way.
      if (offset === 0) continue;
      noteSegments.push({ offset, size, index });
    }
  }

  const [sectionTable, ...segmentNoteBytes] = yield* readStructures([
    { offset: header.shoff, length: shnum * shentsize, what: `section header table of ${shnum} entries` },
    ...noteSegments.map(({ offset, size, index }) => ({ offset, length: size, what: `note segment (program header ${index})` })),
  ]);
  const segmentNotes = noteSegments.flatMap((segment, i) => readNotes(segmentNoteBytes[i], segment, `note segment (program header ${segment.index})`));

  const sections = Array.from({ length: shnum }, (_, index) => sectionHeader(sectionTable, index));
  const noteSections = sections.flatMap((section, index) => (index !== SHN_UNDEF && section.type === SHT_NOTE ? [{ ...section, index }] : []));
  const nameTable = shstrndx !== SHN_UNDEF ? sections[shstrndx] : undefined;
  const [names, ...sectionNoteBytes] = yield* readStructures([
    nameTable ? { offset: nameTable.offset, length: nameTable.size, what: 'section name table' } : { offset: 0, length: 0, what: 'no section name table' },
    ...noteSections.map(({ offset, size, index }) => ({ offset, length: size, what: `note section ${index}` })),
  ]);
  const sectionNotes = noteSections.flatMap((section, i) => readNotes(sectionNoteBytes[i], section, `note section ${section.index}`));

  const sectionName = (section: SectionHeader): string | undefined =>
    nameTable && section.nameOffset < nameTable.size
      ? cString(names.range(nameTable.offset + section.nameOffset, nameTable.size - section.nameOffset, 'section name'))
      : undefined;
  const xenGuest = sections.find((section, index) => index !== SHN_UNDEF && section.type !== SHT_NOBITS && sectionName(section) === XEN_GUEST_SECTION);
  const xenGuestSection = xenGuest
    ? (yield* readStructures([{ offset: xenGuest.offset, length: xenGuest.size, what: `section ${XEN_GUEST_SECTION}` }]))[0].all()
    : undefined;

  return { bits, machine, format, notes: { segmentNotes, sectionNotes }, xenGuestSection };
}

/** Reads the notes of one segment or section: 4-byte namesz, descsz, type; name and desc padded to 4 bytes. */
function readNotes(region: BoundedReader, { offset }: Range, what: string): ElfNote[] {
  const bytes = region.all();
  const inner = new BoundedReader(bytes, 0, bytes.length);
  const notes: ElfNote[] = [];
  let at = 0;
  while (at + 12 <= bytes.length) {
    const nameSize = inner.u32(at, `${what}: note header`);
    const descSize = inner.u32(at + 4, `${what}: note header`);
    const type = inner.u32(at + 8, `${what}: note header`);
    const nameAt = at + 12;
    const descAt = nameAt + align4(nameSize);
    const name = inner.range(nameAt, nameSize, `${what}: name of the note at offset ${offset + at}`);
    const desc = inner.range(descAt, descSize, `${what}: descriptor of the note at offset ${offset + at}`);
    notes.push({ owner: cString(name), type, desc, fileOffset: offset + at });
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

/**
 * Little-endian reads of bytes that were read at offset `base` of data of `size` bytes; a read
 * outside them throws a KernelFormatError naming the structure.
 */
class BoundedReader {
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array, private readonly base: number, private readonly size = bytes.length) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  all(): Uint8Array {
    return this.bytes;
  }

  range(offset: number, size: number, what: string): Uint8Array {
    const at = offset - this.base;
    if (at < 0 || at + size > this.bytes.length) {
      throw new KernelFormatError(
        `${what} (offset ${offset}, ${size} bytes) runs past the end of the ${this.size}-byte data: the file is truncated or corrupt`,
      );
    }
    return this.bytes.subarray(at, at + size);
  }

  u8(offset: number, what: string): number {
    this.range(offset, 1, what);
    return this.view.getUint8(offset - this.base);
  }

  u16(offset: number, what: string): number {
    this.range(offset, 2, what);
    return this.view.getUint16(offset - this.base, true);
  }

  u32(offset: number, what: string): number {
    this.range(offset, 4, what);
    return this.view.getUint32(offset - this.base, true);
  }

  /** A 64-bit offset or size; one beyond 2^53 cannot lie inside any file, so it is out of range too. */
  u64(offset: number, what: string): number {
    this.range(offset, 8, what);
    const value = this.view.getBigUint64(offset - this.base, true);
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }
}
