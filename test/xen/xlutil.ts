/**
 * xl's own configuration parser as a test oracle: libxlutil (Debian package libxenmisc4.17, a
 * dependency of xen-utils-4.17) is the library `xl create` reads configuration files with. `xl -N`
 * (dry run) cannot be used here: it still opens the hypervisor's privcmd device. So its parser is
 * called through Python's ctypes; the answer is what xl itself would see.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ORACLE = String.raw`
import ctypes, json, sys
xlu = ctypes.CDLL("libxlutil.so.4.17")
libc = ctypes.CDLL(None)
libc.fdopen.restype = ctypes.c_void_p
xlu.xlu_cfg_init.restype = ctypes.c_void_p
xlu.xlu_cfg_init.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
xlu.xlu_cfg_readdata.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
xlu.xlu_cfg_get_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
xlu.xlu_cfg_get_list.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int), ctypes.c_int]
xlu.xlu_cfg_get_listitem.restype = ctypes.c_char_p
xlu.xlu_cfg_get_listitem.argtypes = [ctypes.c_void_p, ctypes.c_int]
data = open(sys.argv[1], "rb").read()
cfg = xlu.xlu_cfg_init(libc.fdopen(2, b"w"), b"config")
rc = xlu.xlu_cfg_readdata(cfg, data, len(data))
settings = {}
for key in sys.argv[2:]:
    value = ctypes.c_char_p()
    if xlu.xlu_cfg_get_string(cfg, key.encode(), ctypes.byref(value), 1) == 0:
        settings[key] = value.value.decode("utf-8")
        continue
    items = ctypes.c_void_p()
    count = ctypes.c_int()
    if xlu.xlu_cfg_get_list(cfg, key.encode(), ctypes.byref(items), ctypes.byref(count), 1) == 0:
        settings[key] = [xlu.xlu_cfg_get_listitem(items, i).decode("utf-8") for i in range(count.value)]
print(json.dumps({"rc": rc, "settings": settings}))
`;

/** Every setting renderXlConfig writes: the tests read them all back, so that one written where it should not be shows. */
export const XL_KEYS: readonly string[] = ['name', 'type', 'kernel', 'cmdline', 'bootloader', 'bootloader_args', 'disk', 'memory', 'vcpus', 'on_crash', 'vif'];

export interface XlutilReading {
  /** 0 when the whole file parsed; an errno (22, EINVAL) on a syntax error. */
  readonly rc: number;
  /** The requested settings that were read: strings and numbers as text, lists as arrays. */
  readonly settings: { [key: string]: string | string[] };
  /** libxlutil's error report. */
  readonly errors: string;
}

/** Parses `text` with libxlutil and returns the requested settings as xl would see them. */
export function readWithXlutil(text: string | Buffer, keys: readonly string[]): XlutilReading {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-xlutil-'));
  try {
    const file = path.join(dir, 'guest.xl');
    fs.writeFileSync(file, text);
    const result = spawnSync('/usr/bin/python3', ['-c', ORACLE, file, ...keys], { encoding: 'utf8' });
    if (result.error || result.status !== 0) {
      throw new Error(
        `The libxlutil oracle did not run (${result.error?.message ?? result.stderr.trim()}); it needs the Debian packages ` +
        'python3 and xen-utils-4.17 (libxenmisc4.17 ships libxlutil.so.4.17): apt-get install python3 xen-utils-4.17',
      );
    }
    const { rc, settings } = JSON.parse(result.stdout);
    return { rc, settings, errors: result.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
