#!/usr/bin/env bash
# The tests check what the library writes with the tools that own each format: e2fsprogs (e2fsck,
# debugfs, mke2fs, dumpe2fs, resize2fs), diffutils (cmp), xen-utils-4.17 (readnotes, pygrub), binutils
# (readelf, as, ld), fdisk (sfdisk), gzip (gzip -t); the kernel fixtures are rebuilt with gcc,
# gzip, xz and bzip2 to show they come from their sources. The boot tests run Xen in QEMU
# (qemu-system-x86) with a dom0 made of xen-utils-4.17, xenstore-utils and busybox-static, and
# download the hypervisor and dom0 kernel packages, so apt needs its package lists.
# Installs whatever is missing when run as root on Debian; otherwise fails at once naming the package.
set -euo pipefail

# Another apt or dpkg (unattended-upgrades on a fresh machine, a second test run) may hold the dpkg
# lock: wait up to 10 minutes for it instead of failing at once.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }

declare -A tool_package=(
  [e2fsck]=e2fsprogs
  [debugfs]=e2fsprogs
  [mke2fs]=e2fsprogs
  [resize2fs]=e2fsprogs
  [dumpe2fs]=e2fsprogs
  [/usr/lib/xen-4.17/bin/readnotes]=xen-utils-4.17
  [/usr/lib/xen-4.17/bin/pygrub]=xen-utils-4.17
  [cmp]=diffutils
  [readelf]=binutils
  [sfdisk]=fdisk
  [as]=binutils
  [gcc]=gcc
  [make]=make
  [gzip]=gzip
  [xz]=xz-utils
  [bzip2]=bzip2
  [python3]=python3
  [file]=file
  [qemu-system-x86_64]=qemu-system-x86
  [/usr/bin/xenstore]=xenstore-utils
  [/bin/busybox]=busybox-static
)

missing=()
for tool in "${!tool_package[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$tool" ]; then
    missing+=("${tool_package[$tool]}")
  fi
done
# boot downloads linux-image-amd64's kernel and the hypervisor with apt-get download: apt must know them.
apt_knows_kernel() { [[ "$(apt-cache policy linux-image-amd64 2>/dev/null)" == *"Candidate: "[0-9]* ]]; }
if ! apt_knows_kernel; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Updating apt's package lists: the boot tests download the dom0 kernel and Xen packages" >&2
    apt_get update -qq >&2
  else
    echo "apt has no package lists (the boot tests download linux-image-amd64 and xen-hypervisor-4.17-amd64)." >&2
    echo "Run: sudo apt-get update" >&2
    exit 1
  fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian packages the tests need: $packages" >&2
  apt_get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq $packages >&2
else
  echo "The tests need these Debian packages: $packages" >&2
  echo "Install them with: sudo apt-get install -y $packages" >&2
  exit 1
fi
