// The construct API, which jsii compiles for every CDK language: only what a user of the construct
// names. The handler contract (types.ts: the custom-resource properties with their PascalCase
// members, the tag keys, the timing) is internal and stays out of the package's root export.
export { MirageUnikernelAmi } from './unikernel-ami';
export type { MirageUnikernelAmiProps, UnikernelInstancesOptions } from './unikernel-ami';
export { UnikernelKernel } from './kernel';
export type { UnikernelKernelBindOptions, UnikernelKernelConfig } from './kernel';
export { PvGrubKernel } from './pv-grub-kernel';
export type { ImageSharing } from './distribution';
export { BuildStrategy } from './build-strategy';
export type { HelperInstanceBuildOptions } from './build-strategy';
export { BuildStrategyKind, UNIKERNEL_AMI_RESOURCE_TYPE } from './types';
