import {
  buildDiskImage, DiskImageError, DiskLayout, maxKernelBytes, renderMenuLst, validateKernelArgs, validateUnikernelName,
} from '../../lib/disk-image';

describe('validateUnikernelName', () => {
  test.each(['hello', 'a', 'Mirage_3.8-hello', 'x'.repeat(64), '0day'])('accepts %j', (name) => {
    expect(() => validateUnikernelName(name)).not.toThrow();
  });

  test.each([
    ['empty', ''],
    ['65 characters', 'x'.repeat(65)],
    ['leading dot', '.hidden'],
    ['leading dash', '-x'],
    ['slash', 'boot/evil'],
    ['space', 'hello world'],
    ['newline', 'hello\ntitle evil'],
    ['non-ASCII', 'héllo'],
  ])('refuses %s, naming what was given and what is allowed', (_, name) => {
    expect(() => validateUnikernelName(name)).toThrow(DiskImageError);
    expect(() => validateUnikernelName(name)).toThrow(
      new RegExp(`Invalid unikernel name ${escape(JSON.stringify(name))}: use 1 to 64 characters of letters, digits`),
    );
  });
});

describe('validateKernelArgs', () => {
  test.each(['', 'console=hvc0', '--ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1', 'a'.repeat(1023)])('accepts %j', (args) => {
    expect(() => validateKernelArgs(args)).not.toThrow();
  });

  test.each([
    ['a newline', 'a=1\nkernel /evil', /character 3 is U\+000A/],
    ['a carriage return', 'a=1\r', /character 3 is U\+000D/],
    ['a tab', 'a\tb', /character 1 is U\+0009/],
    ['DEL', 'a\x7f', /character 1 is U\+007F/],
    ['non-ASCII', 'name=café', /character 8 is U\+00E9/],
  ])('refuses %s', (_, args, where) => {
    expect(() => validateKernelArgs(args)).toThrow(DiskImageError);
    expect(() => validateKernelArgs(args)).toThrow(where);
    expect(() => validateKernelArgs(args)).toThrow(/only printable ASCII/);
  });

  test.each([1024, 5000])('refuses %d bytes: Xen keeps 1023 and a NUL', (length) => {
    expect(() => validateKernelArgs('a'.repeat(length))).toThrow(
      new RegExp(`Kernel arguments are ${length} bytes; Xen's guest command line holds at most 1023 bytes \\(1024 with the terminating NUL\\)`),
    );
  });
});

describe('renderMenuLst', () => {
  test('whole volume, with arguments', () => {
    expect(renderMenuLst('hello', '/boot/hello.xen', 'console=hvc0', DiskLayout.WHOLE_VOLUME))
      .toBe('default 0\ntimeout 0\n\ntitle hello\nroot (hd0)\nkernel /boot/hello.xen console=hvc0\n');
  });

  test('MBR partition, no arguments: no trailing space', () => {
    expect(renderMenuLst('hello', '/boot/hello.xen', '', DiskLayout.MBR_PARTITION))
      .toBe('default 0\ntimeout 0\n\ntitle hello\nroot (hd0,0)\nkernel /boot/hello.xen\n');
  });

  test('refuses arguments that would add a menu.lst line', () => {
    expect(() => renderMenuLst('hello', '/boot/hello.xen', 'x\ninitrd /evil', DiskLayout.WHOLE_VOLUME)).toThrow(DiskImageError);
  });
});

describe('buildDiskImage options', () => {
  const kernel = Buffer.from('kernel');

  test('defaults: 1 GiB, whole volume, no arguments', () => {
    const image = buildDiskImage({ kernel, name: 'hello' });

    expect(image.sizeBytes).toBe(2 ** 30);
    expect(image.layout).toBe(DiskLayout.WHOLE_VOLUME);
    expect(image.kernelPath).toBe('/boot/hello.xen');
    expect(image.menuLst).toBe('default 0\ntimeout 0\n\ntitle hello\nroot (hd0)\nkernel /boot/hello.xen\n');
  });

  test.each([0, 1.5, -1, 16385, NaN])('refuses volumeSizeGiB %d', (volumeSizeGiB) => {
    expect(() => buildDiskImage({ kernel, name: 'hello', volumeSizeGiB })).toThrow(
      new RegExp(`Invalid volumeSizeGiB ${volumeSizeGiB}: give a whole number of GiB from 1 to 16384`),
    );
  });

  test('refuses an unknown layout', () => {
    expect(() => buildDiskImage({ kernel, name: 'hello', layout: 'gpt' as DiskLayout })).toThrow(
      /Invalid disk layout "gpt": use one of 'whole', 'mbr'/,
    );
  });

  test('refuses an empty kernel', () => {
    expect(() => buildDiskImage({ kernel: new Uint8Array(0), name: 'hello' })).toThrow(/The kernel is empty/);
  });

  test('refuses bad names and arguments before doing any work', () => {
    expect(() => buildDiskImage({ kernel, name: '../x' })).toThrow(/Invalid unikernel name/);
    expect(() => buildDiskImage({ kernel, name: 'x', kernelArgs: 'a\nb' })).toThrow(/Invalid kernel arguments/);
  });

  test('a kernel larger than the volume holds: both sizes named, and what to do', () => {
    const capacity = maxKernelBytes(1, DiskLayout.MBR_PARTITION);
    const tooLarge = Buffer.alloc(capacity + 1); // zero-filled pages are not touched, so this costs no memory

    expect(() => buildDiskImage({ kernel: tooLarge, name: 'hello', layout: DiskLayout.MBR_PARTITION })).toThrow(
      new RegExp(`The kernel is ${capacity + 1} bytes, but a 1 GiB volume \\(mbr layout\\) holds a kernel of at most ${capacity} bytes: raise volumeSizeGiB`),
    );
  });
});

describe('maxKernelBytes', () => {
  test('grows with the volume, is smaller with a partition table, and stops below 2 GiB', () => {
    const whole1 = maxKernelBytes(1, DiskLayout.WHOLE_VOLUME);
    const mbr1 = maxKernelBytes(1, DiskLayout.MBR_PARTITION);

    // 1 GiB less each of 8 groups' inode table (1 block) and bitmaps, superblock copies and indirect blocks.
    expect(whole1).toBeLessThan(2 ** 30 - 8 * 3 * 4096);
    expect(whole1).toBeGreaterThan(0.95 * 2 ** 30);
    expect(mbr1).toBeLessThan(whole1);
    expect(maxKernelBytes(2, DiskLayout.WHOLE_VOLUME)).toBeGreaterThan(whole1);
    expect(maxKernelBytes(16384, DiskLayout.WHOLE_VOLUME)).toBe(2 ** 31 - 1);
  });

  test('refuses an invalid volume size', () => {
    expect(() => maxKernelBytes(0, DiskLayout.WHOLE_VOLUME)).toThrow(/Invalid volumeSizeGiB 0/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
