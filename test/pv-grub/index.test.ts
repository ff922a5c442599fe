import {
  architectureOfKernelId,
  isPvInstanceType,
  KernelArchitecture,
  PV_GRUB_AKIS,
  PV_GRUB_REGIONS,
  pvGrubKernelId,
} from '../../lib/pv-grub';
import { DOCUMENTED_PV_GRUB_AKIS } from '../fixtures/documented-akis';

describe('PV-GRUB AKI table', () => {
  test('matches the documented table in every region and architecture', () => {
    expect(PV_GRUB_AKIS).toEqual(DOCUMENTED_PV_GRUB_AKIS);
    for (const [region, akis] of Object.entries(DOCUMENTED_PV_GRUB_AKIS)) {
      expect(pvGrubKernelId(region, KernelArchitecture.X86_64)).toBe(akis.x86_64);
      expect(pvGrubKernelId(region, KernelArchitecture.I386)).toBe(akis.i386);
    }
  });

  test('gives the hd0 1.05 AKI of a region for each architecture', () => {
    expect(pvGrubKernelId('us-east-1', KernelArchitecture.X86_64)).toBe('aki-5c21674b');
    expect(pvGrubKernelId('us-east-1', KernelArchitecture.I386)).toBe('aki-04206613');
    expect(pvGrubKernelId('eu-west-1', KernelArchitecture.X86_64)).toBe('aki-dc9ed9af');
  });

  test('has no AKI for a region without PV support', () => {
    expect(pvGrubKernelId('eu-north-1', KernelArchitecture.X86_64)).toBeUndefined();
    expect(PV_GRUB_REGIONS).not.toContain('eu-north-1');
  });

  test('every AKI is unique and names one architecture', () => {
    const ids = Object.values(PV_GRUB_AKIS).flatMap((akis) => [akis.x86_64, akis.i386]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [region, akis] of Object.entries(PV_GRUB_AKIS)) {
      expect(PV_GRUB_REGIONS).toContain(region);
      expect(architectureOfKernelId(akis.x86_64)).toBe(KernelArchitecture.X86_64);
      expect(architectureOfKernelId(akis.i386)).toBe(KernelArchitecture.I386);
    }
  });

  test('does not know the architecture of an AKI outside the table', () => {
    // The 2013 MirageOS instructions used this hd00 1.01 AKI; it is not a 1.05 hd0 id.
    expect(architectureOfKernelId('aki-4e7d9527')).toBeUndefined();
  });
});

describe('PV instance families', () => {
  test.each(['t1.micro', 'm1.small', 'm3.medium', 'c1.medium', 'c3.large', 'hs1.8xlarge', 'M2.xlarge'])('%s runs PV AMIs', (type) => {
    expect(isPvInstanceType(type)).toBe(true);
  });

  test.each(['t2.micro', 't3.nano', 'm5.large', 'c5.large', 'x1.16xlarge', 't1', 'm1.', 't1.micro.extra'])('%s does not', (type) => {
    expect(isPvInstanceType(type)).toBe(false);
  });
});
