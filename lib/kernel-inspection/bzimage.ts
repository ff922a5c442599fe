/**
 * Linux bzImage kernels, read the way Xen's bzImage loader (tools/libs/guest
 * xg_dom_bzimageloader.c) reads them, with the setup header of the Linux x86 boot protocol
 * (Documentation/arch/x86/boot.rst).
 */
import { KernelArchitecture } from '../pv-grub';
import type { Found } from './classify';
import { compressionOf } from './compression';
import { isElf } from './elf';
import { readRange, Reads } from './reads';
import { KernelInspection } from './types';
import { refused } from './xen-kernel';

/** Linux x86 boot protocol: the setup header magic "HdrS" at 0x202 marks a bzImage. */
export function isBzImage(bytes: Uint8Array): boolean {
  return bytes.length >= 0x206 && Buffer.from(bytes.subarray(0x202, 0x206)).toString('latin1') === 'HdrS';
}

/** Setup header offsets (Documentation/arch/x86/boot.rst). */
const SETUP_SECTS = 0x1f1;
const PROTOCOL_VERSION = 0x206;
const XLOADFLAGS = 0x236;
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;
/** How much of the file the setup header takes: what is read to recognise it. */
export const SETUP_HEADER_END = 0x250;
const XLF_KERNEL_64 = 1;

/**
 * A Linux bzImage, as Xen's bzImage loader reads it: boot protocol 2.08 or later (which added
 * payload_offset and payload_length), the payload at (setup_sects + 1) * 512 + payload_offset,
 * decompressed, must be an ELF with the Xen notes. `header` holds the file's first bytes (up to
 * SETUP_HEADER_END) and `size` its size; the payload's ELF is inspected by the caller.
 */
export function* classifyBzImage(header: Uint8Array, size: number): Reads<Found> {
  if (size < SETUP_HEADER_END) {
    return inspected(refused('Linux bzImage', `The kernel file has the Linux bzImage magic "HdrS" but is only ${size} bytes long, shorter than its setup header (${SETUP_HEADER_END} bytes). Give the complete kernel file.`));
  }
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const version = view.getUint16(PROTOCOL_VERSION, true);
  const versionText = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  const format = `Linux bzImage (boot protocol ${versionText})`;
  if (version < 0x208) {
    return inspected(refused(format, `The Linux bzImage uses boot protocol ${versionText}, but Xen's bzImage loader needs 2.08 or later, which gives the payload's place. Use a newer Linux kernel built with Xen PV support (CONFIG_XEN_PV).`));
  }
  const architecture = version >= 0x20c
    ? (view.getUint16(XLOADFLAGS, true) & XLF_KERNEL_64 ? KernelArchitecture.X86_64 : KernelArchitecture.I386)
    : undefined;
  const payloadStart = (header[SETUP_SECTS] + 1) * 512 + view.getUint32(PAYLOAD_OFFSET, true);
  const payloadLength = view.getUint32(PAYLOAD_LENGTH, true);
  const payloadEnd = payloadStart + payloadLength;
  if (payloadEnd > size) {
    return inspected(refused(format, `The Linux bzImage's payload (bytes ${payloadStart} to ${payloadEnd}) runs past the end of the ${size}-byte file: it is truncated or corrupt. Give the complete kernel file.`));
  }
  const { bytes: payloadHead } = yield* readRange(payloadStart, Math.min(payloadLength, 16));
  const compression = compressionOf(payloadHead);
  const describe = (payloadFormat: (inner: KernelInspection) => string) => (inner: KernelInspection): KernelInspection => {
    const warnings = architecture && inner.architecture && architecture !== inner.architecture
      ? [`The bzImage header says ${architecture} but its payload is ${inner.architecture}; the payload decides.`]
      : [];
    return { ...inner, format: `${format} with a ${payloadFormat(inner)} payload`, warnings: [...inner.warnings, ...warnings] };
  };
  if (isElf(payloadHead)) {
    return { kind: 'elf', offset: payloadStart, length: payloadLength, describe: describe((inner) => inner.format) };
  }
  if (compression === 'gzip') {
    const gzipFormat = `${format} with a gzip-compressed payload`;
    return {
      kind: 'gzip',
      offset: payloadStart,
      length: payloadLength,
      *inner(): Reads<Found> {
        const { bytes } = yield* readRange(0, 4);
        return isElf(bytes)
          ? { kind: 'elf', describe: (elf: KernelInspection) => elf }
          : inspected(refused(gzipFormat, "The Linux bzImage's gzip-compressed payload is not an ELF file, which Xen's bzImage loader needs. Give a Linux kernel built with Xen PV support (CONFIG_XEN_PV)."));
      },
      describe: describe((inner) => `gzip-compressed ${inner.format}`),
      refuse: (reason) => refused(gzipFormat, `The Linux bzImage's payload starts with the gzip magic, but ${reason}. Give an intact kernel file.`),
    };
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
  return inspected({ bootable: true, architecture, format: `${format} with a ${payloadKind} payload`, compressed: false, notes: [], warnings });
}

function inspected(inspection: KernelInspection): Found {
  return { kind: 'inspected', inspection };
}
