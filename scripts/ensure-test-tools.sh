#!/usr/bin/env bash
# The tests check what the library writes with the tools that own each format: e2fsprogs (e2fsck,
# debugfs, mke2fs), xen-utils-4.17 (readnotes, pygrub), binutils (readelf, as, ld), fdisk (sfdisk); the
# kernel fixtures are rebuilt with gcc, gzip, xz and bzip2 and compared with cmp (diffutils) to show
# they come from their sources.
# Installs whatever is missing when run as root on Debian; otherwise fails at once naming the package.
set -euo pipefail

declare -A tool_package=(
  [e2fsck]=e2fsprogs
  [debugfs]=e2fsprogs
  [mke2fs]=e2fsprogs
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
)

missing=()
for tool in "${!tool_package[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$tool" ]; then
    missing+=("${tool_package[$tool]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian packages the tests need: $packages" >&2
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >&2
else
  echo "The tests need these Debian packages: $packages" >&2
  echo "Install them with: sudo apt-get install -y $packages" >&2
  exit 1
fi
