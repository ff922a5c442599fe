/**
 * Local Xen support, apart from the construct and from AWS: xl configuration files for a Xen host,
 * and booting a guest under real Xen inside QEMU on a machine without Xen.
 */
export { renderXlConfig, readXlConfig, parseXlConfig, quoteXlString, XlConfigError, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS } from './xl-config';
export type { XlConfigOptions, XlValue } from './xl-config';
export { bootGuest, DEFAULT_GUEST_TIMEOUT_SECONDS } from './boot';
export type { BootOptions, BootResult } from './boot';
export { prepareDom0, defaultCacheDir } from './dom0';
export type { Dom0Machine, PrepareDom0Options } from './dom0';
export { HOST_PACKAGES, XenHostError } from './host';
