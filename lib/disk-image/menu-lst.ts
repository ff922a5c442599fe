import { DiskLayout } from './types';
import { validateKernelArgs, validateUnikernelName } from './validation';

/**
 * The text of /boot/grub/menu.lst: boot the one entry at once. `root (hd0)` names the unpartitioned
 * volume and `root (hd0,0)` its first MBR partition (AWS "User provided kernels").
 * @throws DiskImageError for a name or arguments that validateUnikernelName / validateKernelArgs refuse
 */
export function renderMenuLst(name: string, kernelPath: string, kernelArgs: string, layout: DiskLayout): string {
  validateUnikernelName(name);
  validateKernelArgs(kernelArgs);
  const root = layout === DiskLayout.MBR_PARTITION ? '(hd0,0)' : '(hd0)';
  const kernelLine = kernelArgs === '' ? kernelPath : `${kernelPath} ${kernelArgs}`;
  return `default 0\ntimeout 0\n\ntitle ${name}\nroot ${root}\nkernel ${kernelLine}\n`;
}
