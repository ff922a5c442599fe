export * from './unikernel-ami';
export * from './kernel';
export * from './pv-grub-kernel';
export * from './build-strategy';
export { AmiRemovalKind, BuildStrategyKind, UNIKERNEL_AMI_RESOURCE_TYPE } from './types';
export type { HelperInstanceBuildProperties, UnikernelAmiAttributes, UnikernelAmiProperties } from './types';
