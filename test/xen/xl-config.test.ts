/**
 * The xl configuration writer and reader, checked against libxlutil, the parser `xl create` uses
 * (see xlutil.ts): what the writer quotes must read back exactly, and what it refuses is what
 * libxlutil cannot read back faithfully.
 */
import { parseXlConfig, quoteXlString, readXlConfig, renderXlConfig, XlConfigError, XlConfigOptions } from '../../lib/xen/xl-config';
import { readWithXlutil, XL_KEYS } from './xlutil';

describe('renderXlConfig', () => {
  test('a direct PV boot: every setting, as xl reads it', () => {
    // GIVEN
    const options: XlConfigOptions = {
      name: 'hello', kernel: '/srv/unikernels/hello.xen', cmdline: '--ipv4=10.0.0.2/24 verbose', memoryMiB: 64, vcpus: 2, bridge: 'xenbr0',
    };

    // WHEN
    const text = renderXlConfig(options);
    const reading = readWithXlutil(text, XL_KEYS);

    // THEN
    expect(reading.rc).toBe(0);
    expect(reading.settings).toEqual({
      name: 'hello',
      type: 'pv',
      kernel: '/srv/unikernels/hello.xen',
      cmdline: '--ipv4=10.0.0.2/24 verbose',
      memory: '64',
      vcpus: '2',
      on_crash: 'preserve',
      vif: ['bridge=xenbr0'],
    });
  });

  test('a disk boot through pygrub: the disk read-only as xvda, pygrub told to take the default entry', () => {
    const text = renderXlConfig({ name: 'hello', disk: '/var/lib/images/hello.img' });
    const reading = readWithXlutil(text, XL_KEYS);
    expect(reading.rc).toBe(0);
    expect(reading.settings).toEqual({
      name: 'hello',
      type: 'pv',
      bootloader: 'pygrub',
      bootloader_args: ['-q'],
      disk: ['format=raw,vdev=xvda,access=r,target=/var/lib/images/hello.img'],
      memory: '256',
      vcpus: '1',
      on_crash: 'preserve',
    });
    expect(text).not.toMatch(/kernel|cmdline|vif|script=/);
  });

  test.each([
    ['double quotes', 'say "hi"'],
    ['single quotes', "it's"],
    ['backslashes, also at the end', 'C:\\dir\\'],
    ['a backslash before a quote', 'a\\"b'],
    ['comment, separator and list characters', 'a # b ; c , [d] = e'],
    ['shell characters', '$HOME `id` $(id) && | >'],
    ['non-ASCII (written as UTF-8)', '/srv/unikernels/café-☕-𝔘.xen'],
  ])('a path with %s reads back exactly', (_what, value) => {
    const text = renderXlConfig({ name: 'quoting', kernel: value });
    const disk = renderXlConfig({ name: 'quoting', disk: value });
    expect(readWithXlutil(text, ['kernel']).settings.kernel).toBe(value);
    expect(readWithXlutil(disk, ['disk']).settings.disk).toEqual([`format=raw,vdev=xvda,access=r,target=${value}`]);
    // The reader agrees with xl's parser.
    expect(parseXlConfig(text).get('kernel')).toBe(value);
    expect(readXlConfig(disk).disk).toBe(value);
  });

  test.each([
    ['quotes and backslashes', 'x="1 2" y=\'3\' z=\\q \\'],
    ['every printable ASCII character', Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('')],
  ])('a cmdline with %s reads back exactly', (_what, cmdline) => {
    const text = renderXlConfig({ name: 'args', kernel: '/k.xen', cmdline });
    expect(readWithXlutil(text, ['cmdline']).settings.cmdline).toBe(cmdline);
    expect(readXlConfig(text).cmdline).toBe(cmdline);
  });

  test.each([
    [{ name: 'x', kernel: '/a\nb.xen' }, /kernel path.*U\+000A/],
    [{ name: 'x', disk: '/a\tb.img' }, /disk path.*U\+0009/],
    [{ name: 'x', kernel: '/a\u007fb' }, /U\+007F/],
    [{ name: 'x', kernel: '/a\ud800b' }, /unpaired UTF-16 surrogate/],
    [{ name: 'x', kernel: '/k', cmdline: 'a\nb' }, /U\+000A/],
    [{ name: 'x', kernel: '/k', cmdline: 'caf\u00e9' }, /printable ASCII/],
    [{ name: 'x', kernel: '/k', cmdline: 'a'.repeat(1024) }, /1024 bytes.*at most 1023/],
    [{ name: 'x', kernel: '' }, /kernel path is empty/],
    [{ name: 'x' }, /exactly one of kernel .* or disk .*got neither/],
    [{ name: 'x', kernel: '/k', disk: '/d' }, /got both/],
    [{ name: 'x', disk: '/d', cmdline: 'a' }, /menu\.lst/],
    [{ name: '', kernel: '/k' }, /Invalid domain name ""/],
    [{ name: 'two words', kernel: '/k' }, /Invalid domain name "two words"/],
    [{ name: '42', kernel: '/k' }, /not all digits/],
    [{ name: 'a"b', kernel: '/k' }, /Invalid domain name/],
    [{ name: 'x', kernel: '/k', memoryMiB: 0 }, /Invalid memory 0/],
    [{ name: 'x', kernel: '/k', memoryMiB: 268435456 }, /Invalid memory 268435456.*MiB from 1 to 1048576/],
    [{ name: 'x', kernel: '/k', memoryMiB: 1.5 }, /Invalid memory 1.5/],
    [{ name: 'x', kernel: '/k', vcpus: 0 }, /Invalid vcpus 0/],
    [{ name: 'x', kernel: '/k', vcpus: 129 }, /Invalid vcpus 129/],
    [{ name: 'x', kernel: '/k', bridge: 'br0,script=evil' }, /Invalid bridge/],
    [{ name: 'x', kernel: '/k', bridge: 'a-very-long-bridge0' }, /Invalid bridge/],
  ] as [XlConfigOptions, RegExp][])('refuses %j with a message that says why', (options, message) => {
    expect(() => renderXlConfig(options)).toThrow(XlConfigError);
    expect(() => renderXlConfig(options)).toThrow(message);
  });
});

describe('why the writer refuses control characters and writes no other escapes', () => {
  // These read the raw syntax with xl's parser: the facts the writer's refusals rest on.
  test('a raw newline ends a quoted string: the rest of the file is misread', () => {
    const reading = readWithXlutil('cmdline = "a\nb"\nname = "x"\n', ['cmdline', 'name']);
    expect(reading.rc).not.toBe(0);
    expect(reading.settings.cmdline).toBeUndefined();
  });

  test('an escape other than a C one is a syntax error', () => {
    const reading = readWithXlutil('cmdline = "a\\qb"\n', ['cmdline']);
    expect(reading.rc).not.toBe(0);
    expect(reading.errors).toMatch(/invalid character after backlash/);
  });

  test('a hex escape skips a character and fails to parse', () => {
    const reading = readWithXlutil('cmdline = "\\x41"\n', ['cmdline']);
    expect(reading.rc).not.toBe(0);
    expect(reading.errors).toMatch(/invalid digit after backslash hex/);
  });

  test('quoteXlString escapes only the quote and the backslash', () => {
    expect(quoteXlString('a"b\\c\'d')).toBe('"a\\"b\\\\c\'d"');
  });
});

describe('readXlConfig', () => {
  test('reads back what the writer wrote, defaults included', () => {
    const options: XlConfigOptions = { name: 'hello', kernel: '/k.xen', cmdline: 'a b', memoryMiB: 32, vcpus: 1, bridge: 'br0' };
    expect(readXlConfig(renderXlConfig(options))).toEqual(options);
    expect(readXlConfig(renderXlConfig({ name: 'd', disk: '/d.img' }))).toEqual({
      name: 'd', kernel: undefined, cmdline: undefined, disk: '/d.img', memoryMiB: 256, vcpus: 1, bridge: undefined,
    });
  });

  test('reads the syntax xl reads: single quotes, semicolons, comments, lists over several lines', () => {
    const text = "# a unikernel\nname = 'hello' ; memory = 64\nkernel = '/k.xen' # trailing comment\nvif = [\n  'bridge=br0',\n]\n";
    expect(readXlConfig(text)).toMatchObject({ name: 'hello', memoryMiB: 64, kernel: '/k.xen', bridge: 'br0' });
    expect(readWithXlutil(text, ['name', 'memory', 'kernel', 'vif']).settings).toEqual({ name: 'hello', memory: '64', kernel: '/k.xen', vif: ['bridge=br0'] });
  });

  test.each([
    ['name = "x"\nkernel = "/k"\nextra = "console=hvc0"\n', /'extra' is not one that mirage-unikernel-ami xl writes/],
    ['name = "x"\nkernel = "/k"\ntype = "pvh"\n', /Only PV guests/],
    ['name = "x"\ndisk = [ "format=raw,vdev=xvda,access=r,target=/d" ]\n', /without bootloader = "pygrub"/],
    ['name = "x"\nbootloader = "pygrub"\ndisk = [ "/d,raw,xvda,rw" ]\n', /Only the disk spec/],
    ['name = "x"\nkernel = "/k"\nvif = [ "mac=00:16:3e:00:00:01" ]\n', /bridge=BR/],
    ['name = "x"\nkernel = "/k\n', /line 2: the string .* has no closing "/],
    ['name = "x"\nkernel = "/k" "/j"\n', /line 2: expected the end of the line/],
    ['name = "x"\nkernel += "/k"\n', /'kernel \+=' is not supported/],
    ['name = "x"\nkernel = "/k\\n"\n', /the escape \\n is not supported/],
    ['kernel = "/k"\n', /no 'name'/],
    ['name = "x"\nkernel = "/k"\n# no newline at the end', /a comment must end with a newline/],
  ])('refuses %j', (text, message) => {
    expect(() => readXlConfig(text)).toThrow(message);
  });
});
