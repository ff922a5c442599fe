/**
 * The committed example kernel must be something Xen loads as a 64-bit PV guest:
 * libelf (xen/common/libelf/libelf-dominfo.c) wants XEN_VERSION "xen-3.0" and
 * LOADER "generic", and PV-GRUB's kexec only takes ELF64 x86-64 (xen-3.0-x86_64).
 * The notes are read with Xen's own readnotes, the ELF header with binutils' readelf.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const HELLO_XEN = path.join(__dirname, '..', '..', 'examples', 'hello', 'hello.xen');
const READNOTES = '/usr/lib/xen-4.17/bin/readnotes';

function runTool(tool: string, args: string[], debianPackage: string): string {
  try {
    return execFileSync(tool, args, { encoding: 'utf8' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${tool} is not installed; these tests need it. Install the Debian package: apt-get install ${debianPackage}`);
    }
    throw err;
  }
}

/** readnotes prints one "NAME: value" line per Xen note; numeric values carry a "(N bytes)" suffix. */
function readXenNotes(file: string): Map<string, string> {
  const notes = new Map<string, string>();
  for (const line of runTool(READNOTES, [file], 'xen-utils-4.17').split('\n')) {
    const match = /^([A-Z0-9_]+):\s*(.*?)(?:\s+\(\d+ bytes\))?$/.exec(line);
    if (match) notes.set(match[1], match[2]);
  }
  return notes;
}

function readElfHeader(file: string): Map<string, string> {
  const header = new Map<string, string>();
  for (const line of runTool('readelf', ['-hW', file], 'binutils').split('\n')) {
    const match = /^\s+([^:]+):\s+(.*)$/.exec(line);
    if (match) header.set(match[1].trim(), match[2].trim());
  }
  return header;
}

interface LoadSegment { readonly virtAddr: bigint; readonly memSize: bigint }

function readLoadSegments(file: string): LoadSegment[] {
  return runTool('readelf', ['-lW', file], 'binutils').split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[0] === 'LOAD')
    .map((fields) => ({ virtAddr: BigInt(fields[2]), memSize: BigInt(fields[5]) }));
}

function requiredNote(notes: Map<string, string>, name: string): string {
  const value = notes.get(name);
  if (value === undefined) {
    throw new Error(`examples/hello/hello.xen has no Xen ${name} note; readnotes found: ${[...notes.keys()].join(', ') || 'none'}`);
  }
  return value;
}

describe('examples/hello/hello.xen', () => {
  const notes = readXenNotes(HELLO_XEN);
  const header = readElfHeader(HELLO_XEN);

  test('carries the notes that make Xen load it as a PV guest', () => {
    expect(requiredNote(notes, 'XEN_VERSION')).toBe('xen-3.0');
    expect(requiredNote(notes, 'LOADER')).toBe('generic');
    expect(requiredNote(notes, 'GUEST_OS')).toMatch(/^MirageUnikernelAmi/);
  });

  test('is not a PVH-only kernel', () => {
    expect(notes.has('PHYS32_ENTRY')).toBe(false);
  });

  test('is an ELF64 x86-64 executable, the only kind PV-GRUB kexecs on 64-bit', () => {
    expect(header.get('Class')).toBe('ELF64');
    expect(header.get('Machine')).toBe('Advanced Micro Devices X86-64');
    expect(header.get('Type')).toMatch(/^EXEC\b/);
  });

  test('enters where its ELF header says, at or above VIRT_BASE', () => {
    const entry = BigInt(requiredNote(notes, 'ENTRY'));
    expect(entry).toBe(BigInt(header.get('Entry point address') ?? 'missing'));
    expect(entry >= BigInt(requiredNote(notes, 'VIRT_BASE'))).toBe(true);
  });

  test('has a page-aligned hypercall page inside its loaded image', () => {
    const hypercallPage = BigInt(requiredNote(notes, 'HYPERCALL_PAGE'));
    expect(hypercallPage % 4096n).toBe(0n);
    const containing = readLoadSegments(HELLO_XEN).filter((segment) =>
      hypercallPage >= segment.virtAddr && hypercallPage + 4096n <= segment.virtAddr + segment.memSize);
    expect(containing).toHaveLength(1);
  });

  test('contains the greeting the boot check looks for on the console', () => {
    expect(fs.readFileSync(HELLO_XEN).includes('Hello from MirageUnikernelAmi')).toBe(true);
  });
});
