/**
 * Compares inspectKernel's Xen notes with those Xen's own tool prints: readnotes (Debian
 * xen-utils-4.17) reads a kernel with Xen's libelf, so the expected values come from Xen, not
 * from this library. readnotes also unpacks gzip files and Linux bzImages, so those are compared too.
 */
import { spawnSync } from 'child_process';
import { existsSync, readFileSync } from 'fs';
import * as path from 'path';
import { inspectKernel, XenNote } from '../../lib/kernel-inspection';

const READNOTES = '/usr/lib/xen-4.17/bin/readnotes';
const KERNELS = path.join(__dirname, '..', 'fixtures', 'kernels');
const HELLO_XEN = path.join(__dirname, '..', '..', 'examples', 'hello', 'hello.xen');

/** A note as readnotes prints it: a string, or a number with its width. */
type PrintedNote = { readonly name: string; readonly text: string } | { readonly name: string; readonly number: bigint; readonly eightBytes: boolean };

interface ReadnotesOutput {
  readonly notes: PrintedNote[];
  readonly xenGuest?: string;
}

/** Runs readnotes; fails (never skips) when it is missing, and on any line it cannot account for. */
function readnotes(file: string): ReadnotesOutput {
  if (!existsSync(READNOTES)) {
    throw new Error(`${READNOTES} is missing: install the Debian package xen-utils-4.17 (apt-get install xen-utils-4.17)`);
  }
  const run = spawnSync(READNOTES, [file], { encoding: 'utf8' });
  if (run.status !== 0) {
    throw new Error(`readnotes ${file} exited with ${run.status}: ${run.stdout}${run.stderr}`);
  }
  const notes: PrintedNote[] = [];
  let xenGuest: string | undefined;
  for (const line of run.stdout.split('\n').filter((l) => l !== '')) {
    const numeric = /^([A-Z0-9_]+):\s+(0x[0-9a-f]+|0) \((\d+) bytes\)$/.exec(line);
    const text = /^([A-Z0-9_]+): (.*)$/.exec(line);
    const guest = /^__xen_guest: (.*)$/.exec(line);
    if (guest) {
      xenGuest = guest[1];
    } else if (numeric) {
      notes.push({ name: numeric[1], number: BigInt(numeric[2]), eightBytes: numeric[3] === '8' });
    } else if (text) {
      notes.push({ name: text[1], text: text[2] });
    } else {
      throw new Error(`unexpected readnotes line for ${file}: ${line}`);
    }
  }
  return { notes, xenGuest };
}

/** inspectKernel's notes in readnotes' terms. */
function asPrinted(note: XenNote): PrintedNote {
  if (typeof note.value === 'string') return { name: note.typeName, text: note.value };
  if (typeof note.value === 'number') return { name: note.typeName, number: BigInt(note.value), eightBytes: false };
  if (typeof note.value === 'bigint') return { name: note.typeName, number: note.value, eightBytes: true };
  throw new Error(`note ${note.typeName} has a raw value; readnotes prints none of the fixtures' notes that way`);
}

describe('inspectKernel agrees with Xen readnotes', () => {
  test.each([
    ['64-bit PV kernel', path.join(KERNELS, 'pv-x86_64.elf')],
    ['64-bit PV kernel with a PVH entry too', path.join(KERNELS, 'pv-pvh-x86_64.elf')],
    ['64-bit PV kernel, notes only in sections', path.join(KERNELS, 'pv-x86_64-section-notes.elf')],
    ['32-bit PAE PV kernel', path.join(KERNELS, 'pv-i386.elf')],
    ['32-bit PV kernel without PAE', path.join(KERNELS, 'pv-i386-without-pae.elf')],
    ['PVH-only kernel', path.join(KERNELS, 'pvh-only.elf')],
    ['AArch64 ELF with Xen notes', path.join(KERNELS, 'pv-aarch64-machine.elf')],
    ['gzip-compressed PV kernel', path.join(KERNELS, 'pv-x86_64.elf.gz')],
    ['Linux bzImage with a gzip payload', path.join(KERNELS, 'bzimage-gzip-x86_64.bin')],
    ['the example hello.xen', HELLO_XEN],
  ])('%s: the same Xen notes, note by note', (_, file) => {
    // GIVEN
    const expected = readnotes(file);
    // WHEN
    const inspection = inspectKernel(readFileSync(file));
    // THEN
    expect(expected.notes.length).toBeGreaterThan(0);
    expect(inspection.notes.map(asPrinted)).toEqual(expected.notes);
    expect(inspection.xenGuestInfo).toBeUndefined();
  });

  test("legacy kernel: the same '__xen_guest' string and no notes", () => {
    // GIVEN
    const file = path.join(KERNELS, 'legacy-xen-guest.elf');
    const expected = readnotes(file);
    // WHEN
    const inspection = inspectKernel(readFileSync(file));
    // THEN
    expect(expected.xenGuest).toMatch(/XEN_VER=/);
    expect(inspection.xenGuestInfo).toEqual(expected.xenGuest);
    expect(inspection.notes.map(asPrinted)).toEqual(expected.notes);
  });

  test('a Xen note only in a non-allocated section: Xen ignores it, inspectKernel reports it and warns', () => {
    // GIVEN
    const file = path.join(KERNELS, 'pv-x86_64-unloaded-note.elf');
    const expected = readnotes(file);
    // WHEN
    const inspection = inspectKernel(readFileSync(file));
    // THEN
    expect(expected.notes.map((note) => note.name)).not.toContain('GUEST_VERSION');
    expect(inspection.notes.filter((note) => note.typeName !== 'GUEST_VERSION').map(asPrinted)).toEqual(expected.notes);
    expect(inspection.notes.filter((note) => note.typeName === 'GUEST_VERSION').map((note) => note.value)).toEqual(['ignored']);
    expect(inspection.warnings).toEqual([expect.stringMatching(/1 Xen note\(s\) lie only in SHT_NOTE sections.*Xen reads only the segments' notes/)]);
  });

  test('ELF without Xen notes: readnotes prints nothing and inspectKernel finds nothing', () => {
    // GIVEN
    const file = path.join(KERNELS, 'no-xen-notes.elf');
    const expected = readnotes(file);
    // WHEN
    const inspection = inspectKernel(readFileSync(file));
    // THEN
    expect(expected).toEqual({ notes: [], xenGuest: undefined });
    expect(inspection.notes).toEqual([]);
    expect(inspection.xenGuestInfo).toBeUndefined();
  });
});
