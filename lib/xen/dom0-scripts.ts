/**
 * The scripts dom0 runs. dom0 talks to the host only through its console (hvc0, which Xen copies to
 * the serial port that QEMU hands to the host), so every line meant for the host starts with
 * DOM0_LINE_PREFIX followed by an event word; `boot.ts` reads them back.
 */
import { CpioArchive } from './cpio';
import { XEN_LIB_DIR } from './host';

export const DOM0_LINE_PREFIX = 'mua:';

/** Where the per-boot archive puts the guest's configuration, settings and files. */
export const RUN_DIR = '/mua';
export const GUEST_CONFIG_PATH = `${RUN_DIR}/guest.xl`;
export const GUEST_ENV_PATH = `${RUN_DIR}/guest.env`;
export const GUEST_FILES_DIR = `${RUN_DIR}/files`;
/** The virtio disk QEMU attaches, as dom0's Linux names it. */
export const DOM0_DISK = '/dev/vda';
/** Under /usr/lib, not /lib: on Debian's merged /usr, /lib is a link to usr/lib. */
export const MODULES_DIR = '/usr/lib/modules/mua';

/** Events dom0 reports, in the order they happen. */
export const Dom0Event = {
  /** init started: `up KERNEL_RELEASE` */
  UP: 'up',
  /** xenstored, xenconsoled and dom0's xenstore entries are ready */
  TOOLSTACK: 'toolstack',
  /** xl created and unpaused the guest: `created DOMID` */
  CREATED: 'created',
  /** a line the guest wrote to its console: `console TEXT` */
  CONSOLE: 'console',
  /** a line of xl's or pygrub's output, shown when something fails: `log TEXT` */
  LOG: 'log',
  /** xl could not create the guest (the log lines say why) */
  CREATE_FAILED: 'create-failed',
  /** the guest shut down: `exit REASON_CODE` (libxl_shutdown_reason: 0 poweroff, 1 reboot, 3 crash, ...) */
  EXIT: 'exit',
  /** dom0 itself could not go on: `fail MESSAGE` */
  FAIL: 'fail',
  /** dom0 is about to power the machine off */
  DONE: 'done',
} as const;

/**
 * /init: mounts the kernel filesystems, loads the modules, starts the toolstack, runs
 * `xl create -F` on the guest configuration, streams the guest's console log, and reports how the
 * guest ended. `xl create -F` stays in the foreground until the guest dies and logs
 * "Domain N has shut down, reason code R", which is how the reason is learnt.
 */
export function dom0InitScript(): string {
  const say = (event: string, rest = '') => `echo "${DOM0_LINE_PREFIX}${event}${rest ? ' ' + rest : ''}"`;
  return `#!/bin/busybox sh
# dom0's /init for mirage-unikernel-ami boot. Lines for the host start with "${DOM0_LINE_PREFIX}".
/bin/busybox --install -s
export PATH=${XEN_LIB_DIR}/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=vt100

finish() { sync; poweroff -f; sleep 60; }
fail() { dmesg | tail -n 20 >/tmp/dmesg.log; report_log /tmp/dmesg.log; ${say(Dom0Event.FAIL, '$*')}; finish; }
report_log() { [ -s "$1" ] && sed 's/^/${DOM0_LINE_PREFIX}${Dom0Event.LOG} /' "$1"; }
report_console() { [ -s "$console_log" ] && sed 's/^/${DOM0_LINE_PREFIX}${Dom0Event.CONSOLE} /' "$console_log"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen /var/lib/xenstored /var/lock /tmp
. ${GUEST_ENV_PATH}
${say(Dom0Event.UP, '$(uname -r)')}

while read -r module; do
  insmod "${MODULES_DIR}/$module.ko" 2>/tmp/insmod.log || { report_log /tmp/insmod.log; fail "cannot load the kernel module $module"; }
done < ${MODULES_DIR}/load-order
mount -t xenfs xenfs /proc/xen 2>/tmp/mount.log || { report_log /tmp/mount.log; fail "cannot mount xenfs on /proc/xen"; }

if [ "$GUEST_HAS_DISK" = 1 ]; then
  i=0
  while [ ! -b ${DOM0_DISK} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ -b ${DOM0_DISK} ] || fail "the disk image did not appear in dom0 as ${DOM0_DISK}"
fi

xenstored --pid-file=/run/xenstored.pid || fail "xenstored did not start"
i=0
while ! xenstore-exists / 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
xen-init-dom0 >/tmp/init-dom0.log 2>&1 || { report_log /tmp/init-dom0.log; fail "xen-init-dom0 failed"; }
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || fail "xenconsoled did not start"
${say(Dom0Event.TOOLSTACK)}

xl create -F ${GUEST_CONFIG_PATH} >/tmp/xl.log 2>&1 &
xl_pid=$!
console_log=/var/log/xen/console/guest-$GUEST_NAME.log
while ! grep -q 'Waiting for domain' /tmp/xl.log; do
  if ! kill -0 $xl_pid 2>/dev/null; then
    report_log /tmp/xl.log
    for log in /var/log/xen/bootloader.*.log; do report_log "$log"; done
    report_console
    ${say(Dom0Event.CREATE_FAILED)}
    finish
  fi
  sleep 0.1
done
${say(Dom0Event.CREATED, "$(sed -n 's/.*Waiting for domain .* (domid \\([0-9]*\\)).*/\\1/p' /tmp/xl.log)")}

# Streamed from the start of the log, after "created", so the console never comes before it.
# The host, not dom0, enforces the timeout: it stops QEMU.
touch "$console_log"
tail -F -s 1 -n +1 "$console_log" 2>/dev/null | while IFS= read -r line || [ -n "$line" ]; do
  printf '%s\\n' "${DOM0_LINE_PREFIX}${Dom0Event.CONSOLE} $line"
done &
console_pid=$!

while kill -0 $xl_pid 2>/dev/null && ! grep -q 'has shut down, reason code' /tmp/xl.log; do sleep 0.2; done
reason=$(sed -n 's/.*has shut down, reason code \\([0-9]*\\).*/\\1/p' /tmp/xl.log | head -n 1)
# Give xenconsoled and tail (which polls once a second) time to pass on the guest's last words.
sleep 2
kill $console_pid 2>/dev/null
xl destroy "$GUEST_NAME" >/dev/null 2>&1
if [ -z "$reason" ]; then
  report_log /tmp/xl.log
  fail "xl stopped watching the guest without a shutdown reason"
fi
${say(Dom0Event.EXIT, '$reason')}
${say(Dom0Event.DONE)}
finish
`;
}

/**
 * /etc/xen/scripts/block, the vbd hotplug script libxl runs for a disk without `script=`. Debian's
 * own needs bash and much more; this one only handles what boot gives the guest, a block device
 * (or a file, through a read-only loop device), and tells blkback which device it is.
 */
export function blockHotplugScript(): string {
  return `#!/bin/sh
# libxl runs: block add|remove, with XENBUS_PATH set to the backend's xenstore directory.
backend=$XENBUS_PATH
case "$1" in
add)
  target=$(xenstore-read "$backend/params") || exit 1
  if [ -b "$target" ]; then
    device=$target
  else
    device=$(losetup -f) && losetup -r "$device" "$target" || exit 1
    xenstore-write "$backend/mua-loop" "$device"
  fi
  xenstore-write "$backend/physical-device" "$(stat -L -c '%t:%T' "$device")" "$backend/hotplug-status" connected
  ;;
remove)
  loop=$(xenstore-read "$backend/mua-loop" 2>/dev/null) && losetup -d "$loop"
  ;;
esac
exit 0
`;
}

/** /etc/xen/xl.conf: dom0's memory is fixed on Xen's command line, so xl must not balloon it. */
export function xlConf(): string {
  return 'autoballoon = "off"\n';
}

/** Adds dom0's scripts and configuration to a boot's archive (the cached initramfs holds only packaged files). */
export function addDom0Scripts(archive: CpioArchive): CpioArchive {
  return archive
    .file('/init', dom0InitScript(), 0o755)
    .file('/etc/xen/scripts/block', blockHotplugScript(), 0o755)
    .file('/etc/xen/xl.conf', xlConf());
}
