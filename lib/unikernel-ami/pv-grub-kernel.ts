import { Annotations, Aws, CfnMapping, CfnRule, Fn, Stack, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import {
  architectureOfKernelId,
  KernelArchitecture,
  PV_GRUB_AKIS,
  PV_GRUB_REGIONS,
  PV_GRUB_VERSION,
  pvGrubKernelId,
} from '../pv-grub';
import { validationError } from './errors';

/** Construct ids of the per-stack mapping and rule; a contract with deployed stacks. */
const MAPPING_ID = 'MirageUnikernelAmiPvGrubKernels';
const REGION_RULE_ID = 'MirageUnikernelAmiPvGrubRegion';

/** CloudFormation mapping keys must be alphanumeric, so `x86_64` becomes `x8664`. */
export function pvGrubMappingKey(architecture: KernelArchitecture): string {
  return architecture.replace(/[^A-Za-z0-9]/g, '');
}

/** The PV-GRUB kernel (AKI) registered as the AMI's kernel; PV-GRUB then loads the unikernel named in menu.lst. */
export abstract class PvGrubKernel {
  /**
   * The PV-GRUB 1.05 hd0 AKI of the stack's region for the kernel's architecture. In an
   * environment-agnostic stack the AKI is looked up at deploy time, and a CloudFormation rule stops
   * the deploy in a region without PV-GRUB.
   */
  public static forRegion(): PvGrubKernel {
    return new RegionPvGrubKernel();
  }

  /** A given AKI, for a PV-GRUB this library does not list. It must be an AKI of the stack's region. */
  public static fromKernelId(kernelId: string): PvGrubKernel {
    return new GivenPvGrubKernel(kernelId);
  }

  /** The AKI id (or a token for it) for a kernel of `architecture` in `scope`'s stack. */
  public abstract bind(scope: Construct, architecture: KernelArchitecture): string;
}

class RegionPvGrubKernel extends PvGrubKernel {
  public bind(scope: Construct, architecture: KernelArchitecture): string {
    const stack = Stack.of(scope);
    if (!Token.isUnresolved(stack.region)) {
      const kernelId = pvGrubKernelId(stack.region, architecture);
      if (kernelId === undefined) {
        throw validationError(
          scope,
          `Region ${stack.region} has no PV-GRUB kernel, so it cannot boot a paravirtual AMI. ` +
          `Deploy the stack to one of ${PV_GRUB_REGIONS.join(', ')}, ` +
          'or give pvGrubKernel: PvGrubKernel.fromKernelId(...) with a PV-GRUB AKI that exists in the region.',
        );
      }
      return kernelId;
    }
    return pvGrubKernelMapping(stack).findInMap(Aws.REGION, pvGrubMappingKey(architecture));
  }
}

/** One mapping and one region rule per stack, shared by its unikernels; like ec2.GenericLinuxImage's region map. */
function pvGrubKernelMapping(stack: Stack): CfnMapping {
  const existing = stack.node.tryFindChild(MAPPING_ID);
  if (existing instanceof CfnMapping) {
    return existing;
  }
  const mapping: { [region: string]: { [key: string]: string } } = {};
  for (const region of PV_GRUB_REGIONS) {
    mapping[region] = {};
    for (const architecture of Object.values(KernelArchitecture)) {
      mapping[region][pvGrubMappingKey(architecture)] = PV_GRUB_AKIS[region][architecture];
    }
  }
  new CfnRule(stack, REGION_RULE_ID, {
    assertions: [{
      assert: Fn.conditionContains([...PV_GRUB_REGIONS], Aws.REGION),
      assertDescription:
        `This stack registers paravirtual AMIs booted by PV-GRUB ${PV_GRUB_VERSION}, which only exists in ` +
        `${PV_GRUB_REGIONS.join(', ')}. Deploy it to one of these regions.`,
    }],
  });
  return new CfnMapping(stack, MAPPING_ID, { mapping });
}

/** The region whose table row lists `kernelId`, if any. */
function regionOfKernelId(kernelId: string): string | undefined {
  return PV_GRUB_REGIONS.find((region) => Object.values(PV_GRUB_AKIS[region]).includes(kernelId));
}

class GivenPvGrubKernel extends PvGrubKernel {
  constructor(private readonly kernelId: string) {
    super();
    if (!Token.isUnresolved(kernelId) && !/^aki-[0-9a-f]{8}([0-9a-f]{9})?$/.test(kernelId)) {
      throw validationError(
        undefined,
        `PvGrubKernel.fromKernelId was given ${JSON.stringify(kernelId)}, which is not a kernel image id. ` +
        'Give a PV-GRUB AKI id such as aki-5c21674b (aws ec2 describe-images --owners amazon --filters Name=name,Values=pv-grub-*.gz lists them).',
      );
    }
  }

  public bind(scope: Construct, architecture: KernelArchitecture): string {
    if (Token.isUnresolved(this.kernelId)) {
      return this.kernelId;
    }
    const knownArchitecture = architectureOfKernelId(this.kernelId);
    if (knownArchitecture === undefined) {
      Annotations.of(scope).addWarningV2(
        'mirage-unikernel-ami:unknown-pv-grub-kernel',
        `${this.kernelId} is not one of the PV-GRUB ${PV_GRUB_VERSION} hd0 AKIs this library knows. ` +
        `Make sure it is a PV-GRUB AKI for ${architecture} kernels in the stack's region, or the AMI will not boot.`,
      );
      return this.kernelId;
    }
    if (knownArchitecture !== architecture) {
      throw validationError(
        scope,
        `${this.kernelId} is a PV-GRUB for ${knownArchitecture} kernels, but the unikernel is ${architecture}: ` +
        'a 64-bit PV-GRUB cannot start a 32-bit kernel, or the reverse. ' +
        `Give the ${architecture} AKI, or use PvGrubKernel.forRegion().`,
      );
    }
    const region = Stack.of(scope).region;
    const kernelRegion = regionOfKernelId(this.kernelId);
    if (!Token.isUnresolved(region) && kernelRegion !== region) {
      throw validationError(
        scope,
        `${this.kernelId} is the PV-GRUB AKI of ${kernelRegion}, but the stack deploys to ${region}, where it does not exist (AKIs are regional). ` +
        'Use PvGrubKernel.forRegion() or the AKI of the stack\'s region.',
      );
    }
    return this.kernelId;
  }
}
