import { spawnSync } from 'child_process';
import { readFileSync } from 'fs';
import * as path from 'path';
import { gzipSync } from 'zlib';
import {
  assertBootableKernel,
  describeInspection,
  inspectKernel,
  KernelInspection,
  KernelNotBootableError,
} from '../../lib/kernel-inspection';
import { KernelArchitecture } from '../../lib/pv-grub';

/** The fixtures of test/fixtures/kernels (see build.sh there for how each is made). */
function kernel(name: string): Buffer {
  return readFileSync(path.join(__dirname, '..', 'fixtures', 'kernels', name));
}

/** A copy of the kernel with one string replaced by another of the same length (to vary a note). */
function withReplaced(bytes: Buffer, from: string, to: string): Buffer {
  expect(to.length).toBe(from.length);
  const copy = Buffer.from(bytes);
  const at = copy.indexOf(from, 0, 'latin1');
  expect(at).toBeGreaterThan(0);
  copy.write(to, at, 'latin1');
  return copy;
}

/** A copy of a bzImage fixture with little-endian setup header fields changed. */
function withHeader(bytes: Buffer, fields: { version?: number; xloadflags?: number; payloadLength?: number }): Buffer {
  const copy = Buffer.from(bytes);
  if (fields.version !== undefined) copy.writeUInt16LE(fields.version, 0x206);
  if (fields.xloadflags !== undefined) copy.writeUInt16LE(fields.xloadflags, 0x236);
  if (fields.payloadLength !== undefined) copy.writeUInt32LE(fields.payloadLength, 0x24c);
  return copy;
}

/** The exit status of `gzip -t` (gzip's own integrity check) on the bytes. */
function gzipTest(bytes: Uint8Array): number {
  const result = spawnSync('gzip', ['-t'], { input: bytes });
  if (result.error) throw new Error(`cannot run gzip (${result.error.message}); install the Debian package gzip`);
  return result.status ?? -1;
}

function refusalOf(bytes: Uint8Array): string {
  try {
    assertBootableKernel(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(KernelNotBootableError);
    return (error as Error).message;
  }
  throw new Error('assertBootableKernel accepted the kernel');
}

function noteValue(inspection: KernelInspection, typeName: string) {
  return inspection.notes.find((note) => note.typeName === typeName)?.value;
}

describe('bootable Xen PV kernels', () => {
  test('64-bit Mini-OS style kernel: x86_64 with its notes', () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('pv-x86_64.elf'));
    // THEN
    expect(inspection).toMatchObject({
      bootable: true,
      architecture: KernelArchitecture.X86_64,
      format: 'ELF64 x86-64',
      compressed: false,
      guestOs: 'Mini-OS',
      xenVersion: 'xen-3.0',
      loader: 'generic',
      warnings: [],
    });
    expect(inspection.reason).toBeUndefined();
    expect(noteValue(inspection, 'ENTRY')).toBe(0x1000n);
  });

  test('notes of another owner are not Xen notes, even with a Xen note number', () => {
    // WHEN
    const inspection = inspectKernel(kernel('pv-x86_64.elf'));
    // THEN
    expect(inspection.notes.filter((note) => note.typeName === 'GUEST_OS').map((note) => note.value)).toEqual(['Mini-OS']);
  });

  test('a note in both the PT_NOTE segment and its SHT_NOTE section is reported once', () => {
    // WHEN
    const typeNames = inspectKernel(kernel('pv-x86_64.elf')).notes.map((note) => note.typeName);
    // THEN
    expect(typeNames).toHaveLength(new Set(typeNames).size);
    expect(typeNames).toContain('HYPERCALL_PAGE');
  });

  test('32-bit PAE kernel: i386, 4-byte notes read as numbers', () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('pv-i386.elf'));
    // THEN
    expect(inspection).toMatchObject({ architecture: KernelArchitecture.I386, format: 'ELF32 i386', guestOs: 'Mini-OS' });
    expect(noteValue(inspection, 'PAE_MODE')).toBe('yes');
    expect(noteValue(inspection, 'HYPERCALL_PAGE')).toBe(0x2000);
  });

  test('notes only in a non-allocated SHT_NOTE section (no PT_NOTE segment) are read', () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('pv-x86_64-section-notes.elf'));
    // THEN
    expect(inspection.architecture).toBe(KernelArchitecture.X86_64);
    expect(inspection.loader).toBe('generic');
  });

  test('a PV kernel that also has a PVH entry point (like Linux) is bootable', () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('pv-pvh-x86_64.elf'));
    // THEN
    expect(noteValue(inspection, 'PHYS32_ENTRY')).toBe(0x1000);
    expect(inspection.architecture).toBe(KernelArchitecture.X86_64);
  });

  test("legacy '__xen_guest' kernel: its string gives guest OS, Xen version and loader", () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('legacy-xen-guest.elf'));
    // THEN
    expect(inspection).toMatchObject({ architecture: KernelArchitecture.X86_64, guestOs: 'Mini-OS', xenVersion: 'xen-3.0', loader: 'generic', notes: [] });
    expect(inspection.xenGuestInfo).toMatch(/^GUEST_OS=Mini-OS,XEN_VER=xen-3\.0,/);
  });

  test("GUEST_OS 'linux' is enough without the generic loader, as Xen's libelf allows", () => {
    // GIVEN
    const linux = withReplaced(withReplaced(kernel('pv-x86_64.elf'), 'Mini-OS', 'linux\0\0'), 'generic', 'bespoke');
    // WHEN
    const inspection = assertBootableKernel(linux);
    // THEN
    expect(inspection).toMatchObject({ guestOs: 'linux', loader: 'bespoke' });
  });

  test('gzip-compressed kernel: compressed, same notes as the plain one', () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('pv-x86_64.elf.gz'));
    // THEN
    expect(inspection).toMatchObject({ compressed: true, format: 'gzip-compressed ELF64 x86-64', architecture: KernelArchitecture.X86_64 });
    expect(inspection.notes).toEqual(inspectKernel(kernel('pv-x86_64.elf')).notes);
  });

  test('Linux bzImage with a gzip payload: the payload ELF is inspected', () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('bzimage-gzip-x86_64.bin'));
    // THEN
    expect(inspection.format).toBe('Linux bzImage (boot protocol 2.15) with a gzip-compressed ELF64 x86-64 payload');
    expect(inspection).toMatchObject({ compressed: false, architecture: KernelArchitecture.X86_64, guestOs: 'Mini-OS', warnings: [] });
    expect(inspection.notes).toEqual(inspectKernel(kernel('pv-x86_64.elf')).notes);
  });

  test('Linux bzImage with an xz payload: accepted with a warning, architecture from XLF_KERNEL_64', () => {
    // WHEN
    const inspection = assertBootableKernel(kernel('bzimage-xz-x86_64.bin'));
    // THEN
    expect(inspection.architecture).toBe(KernelArchitecture.X86_64);
    expect(inspection.notes).toEqual([]);
    expect(inspection.warnings).toEqual([expect.stringMatching(/payload is xz-compressed.*not checked.*CONFIG_XEN_PV/)]);
  });

  test('Linux bzImage without XLF_KERNEL_64 (protocol 2.12+) is i386, with the PAE warning', () => {
    // WHEN
    const inspection = assertBootableKernel(withHeader(kernel('bzimage-xz-x86_64.bin'), { xloadflags: 0 }));
    // THEN
    expect(inspection.architecture).toBe(KernelArchitecture.I386);
    expect(inspection.warnings).toContainEqual(expect.stringMatching(/only PAE kernels.*CONFIG_X86_PAE/));
  });

  test('Linux bzImage of protocol 2.08 to 2.11 with an uninspectable payload: architecture unknown, said in a warning', () => {
    // WHEN
    const inspection = assertBootableKernel(withHeader(kernel('bzimage-xz-x86_64.bin'), { version: 0x020a }));
    // THEN
    expect(inspection.architecture).toBeUndefined();
    expect(inspection.warnings).toContainEqual(expect.stringMatching(/protocol 2\.10 predates 2\.12.*architecture is unknown/));
  });
});

describe('kernels PV-GRUB cannot boot', () => {
  test('PVH-only kernel (only PHYS32_ENTRY): refused, naming MirageOS 3.9+ and what boots instead', () => {
    // WHEN
    const message = refusalOf(kernel('pvh-only.elf'));
    // THEN
    expect(message).toMatch(/PVH-only kernel: its only Xen note is PHYS32_ENTRY/);
    expect(message).toMatch(/MirageOS 3\.9 and later build such PVH-only kernels \(Solo5-based\)/);
    expect(message).toMatch(/MirageOS 3\.8 or earlier.*Unikraft's xen platform for x86_64.*Mini-OS.*HaLVM.*rumprun.*Linux kernel built with Xen PV support/);
  });

  test('PHYS32_ENTRY without the PV notes is PVH-only too', () => {
    // GIVEN: the PV+PVH kernel with its LOADER and GUEST_OS no longer PV ones
    const pvhWithLeftovers = withReplaced(withReplaced(kernel('pv-pvh-x86_64.elf'), 'generic', 'solo5xx'), 'Mini-OS', 'Solo5xx');
    // WHEN / THEN
    expect(() => assertBootableKernel(pvhWithLeftovers)).toThrow(/PVH-only kernel: it has PHYS32_ENTRY.*but not the PV notes/);
  });

  test('ELF without Xen notes: refused as not a Xen kernel', () => {
    expect(() => assertBootableKernel(kernel('no-xen-notes.elf'))).toThrow(
      /ELF64 x86-64 file without Xen ELF notes or a '__xen_guest' section.*Not a Xen-ELF image.*Give a Xen PV kernel/,
    );
  });

  test('non-x86 ELF: refused, saying PV-GRUB boots only x86', () => {
    expect(() => assertBootableKernel(kernel('pv-aarch64-machine.elf'))).toThrow(/ELF64 AArch64 file, but PV-GRUB on EC2 boots only x86/);
  });

  test('32-bit kernel without PAE: refused, the i386 PV-GRUB boots only PAE kernels', () => {
    expect(() => assertBootableKernel(kernel('pv-i386-without-pae.elf'))).toThrow(/32-bit Xen PV kernel without PAE.*only PAE kernels.*PAE_MODE 'yes'/);
  });

  test('neither the generic loader nor Linux: refused with the values found', () => {
    // GIVEN
    const other = withReplaced(kernel('pv-x86_64.elf'), 'generic', 'bespoke');
    // WHEN / THEN
    expect(() => assertBootableKernel(other)).toThrow(/generic loader or Linux.*LOADER 'bespoke' and GUEST_OS 'Mini-OS'/);
  });

  test('a Xen version other than xen-3.0: refused', () => {
    expect(() => assertBootableKernel(withReplaced(kernel('pv-x86_64.elf'), 'xen-3.0', 'xen-2.0'))).toThrow(/XEN_VERSION 'xen-3\.0'.*has XEN_VERSION 'xen-2\.0'/);
  });

  test("a legacy '__xen_guest' with another Xen version: refused", () => {
    expect(() => assertBootableKernel(withReplaced(kernel('legacy-xen-guest.elf'), 'XEN_VER=xen-3.0', 'XEN_VER=xen-2.0'))).toThrow(
      /has a '__xen_guest' section, but .*XEN_VERSION 'xen-2\.0'/,
    );
  });

  test('a required feature Xen does not know: refused, naming it', () => {
    // GIVEN
    const unknownFeature = withReplaced(kernel('pv-x86_64.elf'), '!writable_page_tables', '!writable_page_tablez');
    // WHEN / THEN
    expect(() => assertBootableKernel(unknownFeature)).toThrow(/requires the Xen feature\(s\) writable_page_tablez/);
  });

  test('junk: refused, showing its first bytes', () => {
    expect(() => assertBootableKernel(kernel('junk.bin'))).toThrow(/4109 bytes, starting 6e 6f 74 20 61 20 6b 65\) is neither an ELF file/);
  });

  test('an empty file: refused', () => {
    expect(() => assertBootableKernel(new Uint8Array(0))).toThrow(/kernel file is empty \(0 bytes\)/);
  });

  test.each([
    ['bzip2', kernel('pv-x86_64.elf.bz2')],
    ['xz', kernel('pv-x86_64.elf.xz')],
    ['lzo', Buffer.from([0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a, 0x10, 0x30])],
  ])('%s-compressed kernel: refused, asking for the plain or gzip kernel', (compression, bytes) => {
    expect(() => assertBootableKernel(bytes)).toThrow(
      new RegExp(`is ${compression}-compressed, which this library cannot decompress.*uncompressed kernel, or recompress it with gzip`),
    );
  });

  test('gzip inside gzip: refused, Xen decompresses once', () => {
    expect(() => assertBootableKernel(gzipSync(kernel('pv-x86_64.elf.gz')))).toThrow(/holds gzip-compressed data.*decompresses only once/);
  });

  test('truncated gzip: refused as corrupt or truncated', () => {
    // GIVEN
    const gz = kernel('pv-x86_64.elf.gz');
    // WHEN / THEN
    expect(() => assertBootableKernel(gz.subarray(0, gz.length / 2))).toThrow(/gzip data is corrupt or truncated/);
  });

  test.each([1, 4, 5, 8])('gzip missing its last %d byte(s) (its CRC-32 and length trailer): refused, as gzip -t refuses it', (missing) => {
    // GIVEN the gzip kernel without its last bytes: the deflate data is whole, the trailer is not
    const gz = kernel('pv-x86_64.elf.gz');
    const truncated = gz.subarray(0, gz.length - missing);
    // WHEN / THEN gzip itself refuses it, and so does inspection, saying why
    expect(gzipTest(truncated)).not.toBe(0);
    expect(refusalOf(truncated)).toMatch(/gzip data is corrupt or truncated.*(trailer|ends before)/);
  });

  test.each([
    ['CRC-32', 8, /CRC-32/],
    ['length', 4, /length/],
  ])('gzip whose %s in the trailer does not match the data: refused', (_, fromEnd, reason) => {
    // GIVEN one bit flipped in the trailer field
    const gz = Buffer.from(kernel('pv-x86_64.elf.gz'));
    gz[gz.length - fromEnd] ^= 0x01;
    // WHEN / THEN
    expect(gzipTest(gz)).not.toBe(0);
    expect(refusalOf(gz)).toMatch(reason);
  });

  test('gzip that inflates beyond the limit: refused, saying so', () => {
    expect(() => assertBootableKernel(kernel('pv-x86_64.elf.gz'), { maxInflatedBytes: 1000 })).toThrow(/inflates to more than 1000 bytes/);
  });

  test('Linux bzImage of boot protocol older than 2.08: refused', () => {
    expect(() => assertBootableKernel(withHeader(kernel('bzimage-gzip-x86_64.bin'), { version: 0x0207 }))).toThrow(/boot protocol 2\.07.*needs 2\.08 or later/);
  });

  test('Linux bzImage whose payload runs past the end: refused as truncated', () => {
    expect(() => assertBootableKernel(withHeader(kernel('bzimage-gzip-x86_64.bin'), { payloadLength: 1_000_000 }))).toThrow(/payload \(bytes 1280 to 1001280\) runs past the end/);
  });

  test('Linux bzImage shorter than its setup header: refused', () => {
    expect(() => assertBootableKernel(kernel('bzimage-gzip-x86_64.bin').subarray(0, 0x210))).toThrow(/"HdrS" but is only 528 bytes long/);
  });

  test('Linux bzImage with a gzip payload that is not an ELF: refused', () => {
    // GIVEN: the xz bzImage's payload replaced by gzip-compressed junk of the same header
    const junkPayload = gzipSync(kernel('junk.bin'));
    const bzImage = withHeader(Buffer.concat([kernel('bzimage-gzip-x86_64.bin').subarray(0, 1280), junkPayload]), { payloadLength: junkPayload.length });
    // WHEN / THEN
    expect(() => assertBootableKernel(bzImage)).toThrow(/gzip-compressed payload is not an ELF file/);
  });

  test('corrupt ELF headers give a clear reason, never a RangeError', () => {
    // GIVEN
    const elf = kernel('pv-x86_64.elf');
    const bigEndian = Buffer.from(elf);
    bigEndian[5] = 2;
    const badClass = Buffer.from(elf);
    badClass[4] = 3;
    const smallEntries = Buffer.from(elf);
    smallEntries.writeUInt16LE(8, 54);
    // WHEN / THEN
    expect(refusalOf(elf.subarray(0, 40))).toMatch(/starts like an ELF file, but ELF header \(e_shoff\).*runs past the end of the 40-byte data/);
    expect(refusalOf(elf.subarray(0, 100))).toMatch(/header table of \d+ entries \(offset \d+, \d+ bytes\) runs past the end of the 100-byte data/);
    expect(refusalOf(bigEndian)).toMatch(/big-endian, not little-endian/);
    expect(refusalOf(badClass)).toMatch(/ELF class byte is 3/);
    expect(refusalOf(smallEntries)).toMatch(/e_phentsize is 8, smaller than the 56-byte entries/);
  });

  test('every truncation of a kernel is refused or inspected without throwing', () => {
    // GIVEN
    for (const name of ['pv-x86_64.elf', 'pv-i386.elf', 'pv-x86_64.elf.gz', 'bzimage-gzip-x86_64.bin']) {
      const bytes = kernel(name);
      for (let length = 0; length < bytes.length; length += 7) {
        // WHEN
        const inspection = inspectKernel(bytes.subarray(0, length));
        // THEN
        if (!inspection.bootable) expect(inspection.reason).toMatch(/\. /);
      }
    }
  });

  test('a value that is not bytes is a TypeError saying what was given', () => {
    expect(() => inspectKernel('hello.xen' as unknown as Uint8Array)).toThrow(/needs the kernel file's bytes as a Uint8Array or Buffer, but got string/);
  });

  test('KernelNotBootableError carries the inspection', () => {
    // WHEN
    let caught: unknown;
    try {
      assertBootableKernel(kernel('pvh-only.elf'));
    } catch (error) {
      caught = error;
    }
    // THEN
    expect(caught).toBeInstanceOf(KernelNotBootableError);
    expect((caught as KernelNotBootableError).name).toBe('KernelNotBootableError');
    expect((caught as KernelNotBootableError).inspection).toMatchObject({ bootable: false, architecture: KernelArchitecture.X86_64 });
    expect((caught as KernelNotBootableError).inspection.notes.map((note) => note.typeName)).toEqual(['PHYS32_ENTRY']);
  });
});

describe('describeInspection', () => {
  test('a bootable kernel: format, verdict, architecture and every note on its own line', () => {
    // WHEN
    const report = describeInspection(inspectKernel(kernel('pv-i386.elf'))).split('\n');
    // THEN
    expect(report).toEqual(expect.arrayContaining([
      'Format:        ELF32 i386',
      'Bootable:      yes, by PV-GRUB',
      'Architecture:  i386',
      'Guest OS:      Mini-OS',
      '  PAE_MODE = "yes"',
      '  HYPERCALL_PAGE = 0x2000',
    ]));
    expect(report.filter((line) => line.startsWith('Reason:'))).toEqual([]);
  });

  test('a refused kernel: the verdict and the reason', () => {
    // WHEN
    const report = describeInspection(inspectKernel(kernel('junk.bin'))).split('\n');
    // THEN
    expect(report).toContain('Bootable:      no');
    expect(report).toContainEqual(expect.stringMatching(/^Reason: The kernel file \(4109 bytes/));
  });

  test('warnings are listed', () => {
    // WHEN
    const report = describeInspection(inspectKernel(kernel('bzimage-xz-x86_64.bin')));
    // THEN
    expect(report).toMatch(/^Warning: The Linux bzImage's payload is xz-compressed/m);
  });
});
