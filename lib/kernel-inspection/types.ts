/** The result of inspecting a kernel, shared by the inspection modules. */
import { KernelArchitecture } from '../pv-grub';
import { XenNote } from './xen-notes';

export type { XenNote };

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
