/**
 * The shell script the helper instance runs through SSM (AWS-RunShellScript) to write the staged
 * disk image onto its data volume (attached at launch) and verify it, and the helper's user data.
 *
 * Staged format (see helper-instance.ts): `blocks.gz` is the gzip of the image's non-zero 512 KiB
 * blocks in index order; `manifest.txt` starts with a header line that gives the volume size and
 * then lists one `<index> <sha256 hex>` line per block. Blocks not listed stay zero: a new EBS
 * volume reads as zeros.
 *
 * The sources are presigned HTTPS URLs of the staged objects (presign.ts): the helper downloads them
 * with curl and needs no AWS credentials. They may be local paths instead, and the target a file
 * instead of a volume, so tests run the very same script against a sparse file.
 */

/** How the script's own error messages begin (on stderr), so that the handler can find them among other output. */
export const SCRIPT_MESSAGE_PREFIX = 'mirage-unikernel-ami helper:';

/** First word of the manifest's header line; the script refuses any other manifest. */
export const MANIFEST_MAGIC = 'mirage-unikernel-ami-manifest';

export interface HelperScriptOptions {
  /** Presigned `https://` URL of blocks.gz, or a local path. */
  readonly blocksSource: string;
  /** Presigned `https://` URL of manifest.txt, or a local path. */
  readonly manifestSource: string;
  /** The EBS volume to write; the script finds its device node. Exactly one of volumeId and devicePath. */
  readonly volumeId?: string;
  /** A block device or file to write instead of finding the volume's device (tests). */
  readonly devicePath?: string;
}

/** Quotes a value for a POSIX shell: the result is one word whatever it contains. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Writes, then verifies, the blocks. Modes: `size MANIFEST` prints the volume size; `write DEVICE
 * BLOCKS MANIFEST` checks every block of blocks.gz against the manifest before writing any, then
 * writes each at index * 512 KiB; `verify DEVICE MANIFEST` reads each listed block back.
 * Python 3.9 compatible (Amazon Linux 2023's python3).
 */
export const BLOCK_TOOL_PY = `
import gzip, hashlib, os, sys

BLOCK = 524288

def fail(message):
    sys.stderr.write("${SCRIPT_MESSAGE_PREFIX} " + message + "\\n")
    sys.exit(1)

def read_manifest(path):
    with open(path) as manifest:
        header = manifest.readline().split()
        if not header or header[0] != "${MANIFEST_MAGIC}":
            fail("%s is not a mirage-unikernel-ami manifest (header %r)" % (path, " ".join(header)))
        fields = dict(word.split("=", 1) for word in header[1:] if "=" in word)
        if fields.get("block-bytes") != str(BLOCK):
            fail("manifest block size %r, expected %d" % (fields.get("block-bytes"), BLOCK))
        if "volume-bytes" not in fields:
            fail("manifest header has no volume-bytes: %r" % " ".join(header))
        volume_bytes = int(fields["volume-bytes"])
        entries = []
        for number, line in enumerate(manifest, start=2):
            words = line.split()
            if len(words) != 2 or len(words[1]) != 64:
                fail("manifest line %d is not '<index> <sha256>': %r" % (number, line.rstrip()))
            index = int(words[0])
            if entries and index <= entries[-1][0]:
                fail("manifest line %d: block %d is out of order" % (number, index))
            if (index + 1) * BLOCK > volume_bytes:
                fail("manifest line %d: block %d lies beyond the %d-byte volume" % (number, index, volume_bytes))
            entries.append((index, words[1].lower()))
    if int(fields.get("blocks", -1)) != len(entries):
        fail("manifest header says %s blocks but lists %d" % (fields.get("blocks"), len(entries)))
    return volume_bytes, entries

def staged_blocks(path, entries):
    with gzip.open(path, "rb") as blocks:
        for index, digest in entries:
            data = blocks.read(BLOCK)
            if len(data) != BLOCK:
                fail("%s ends before block %d" % (path, index))
            if hashlib.sha256(data).hexdigest() != digest:
                fail("block %d of %s does not match its manifest checksum (corrupt download?)" % (index, path))
            yield index, data
        if blocks.read(1):
            fail("%s holds more blocks than the manifest lists" % path)

def write(device, blocks_path, manifest_path):
    _, entries = read_manifest(manifest_path)
    for _ in staged_blocks(blocks_path, entries):
        pass
    fd = os.open(device, os.O_WRONLY)
    try:
        for index, data in staged_blocks(blocks_path, entries):
            os.pwrite(fd, data, index * BLOCK)
        os.fsync(fd)
    finally:
        os.close(fd)
    print("wrote %d blocks" % len(entries))

def verify(device, manifest_path):
    _, entries = read_manifest(manifest_path)
    fd = os.open(device, os.O_RDONLY)
    try:
        bad = [index for index, digest in entries
               if hashlib.sha256(os.pread(fd, BLOCK, index * BLOCK)).hexdigest() != digest]
    finally:
        os.close(fd)
    if bad:
        fail("read-back verification failed for %d of %d blocks (first: %s)" % (len(bad), len(entries), bad[:5]))
    print("verified %d blocks" % len(entries))

mode = sys.argv[1]
if mode == "size":
    print(read_manifest(sys.argv[2])[0])
elif mode == "write":
    write(sys.argv[2], sys.argv[3], sys.argv[4])
elif mode == "verify":
    verify(sys.argv[2], sys.argv[3])
else:
    fail("unknown mode " + mode)
`;

const VOLUME_ID_PATTERN = /^vol-[0-9a-f]{8,17}$/;

/** The whole bash script, parameters quoted. */
export function helperScript(options: HelperScriptOptions): string {
  if ((options.volumeId === undefined) === (options.devicePath === undefined)) {
    throw new Error('helperScript needs exactly one of volumeId (on the helper) and devicePath (tests)');
  }
  if (options.volumeId !== undefined && !VOLUME_ID_PATTERN.test(options.volumeId)) {
    throw new Error(`helperScript: '${options.volumeId}' is not an EBS volume id (vol-...)`);
  }
  return `#!/bin/bash
# mirage-unikernel-ami: write a staged unikernel disk image onto an EBS volume, then verify it.
set -euo pipefail
BLOCKS_SOURCE=${shellQuote(options.blocksSource)}
MANIFEST_SOURCE=${shellQuote(options.manifestSource)}
VOLUME_ID=${shellQuote(options.volumeId ?? '')}
DEVICE=${shellQuote(options.devicePath ?? '')}
WORK_DIR=$(mktemp -d)
trap 'rm -rf "$WORK_DIR"' EXIT

fail() { echo "${SCRIPT_MESSAGE_PREFIX} $*" >&2; exit 1; }

block_tool() { python3 - "$@" <<'MUA_BLOCK_TOOL_PY'
${BLOCK_TOOL_PY}
MUA_BLOCK_TOOL_PY
}

# A presigned URL is never printed (it lets anyone read the object until it expires): a failure
# names the object by the URL's path only. curl retries transient failures (AL2023's curl is 8.x).
fetch() {
  local source=$1 target=$2 status=0
  case "$source" in
    https://*)
      curl --fail --silent --show-error --connect-timeout 10 --max-time 600 --retry 5 --retry-delay 2 --retry-all-errors \\
        --output "$target" "$source" 2>"$WORK_DIR/curl.err" || status=$?
      if [ "$status" != 0 ]; then
        fail "could not download \${source%%\\?*} (curl exit $status: $(sed 's/?[^ ]*//g' "$WORK_DIR/curl.err" | tail -n 1))"
      fi
      ;;
    *) cp -- "$source" "$target" || fail "could not read $source" ;;
  esac
}

# Nitro instances show an EBS volume as an NVMe device whose serial is the volume id without its
# dash; Xen instances show a volume attached as /dev/sdf as /dev/xvdf. Attachment takes a while.
# (MUA_DEVICE_ROOT and MUA_DEVICE_ATTEMPTS are for tests, which have no udev: a directory standing
# in for / with those links, and fewer rounds of waiting. Unset on the helper.)
find_device() {
  local root=\${MUA_DEVICE_ROOT:-}
  local nvme="$root/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_\${VOLUME_ID/-/}"
  local candidate
  for _ in $(seq 1 "\${MUA_DEVICE_ATTEMPTS:-90}"); do
    for candidate in "$nvme" "$root/dev/xvdf" "$root/dev/sdf"; do
      if [ -b "$candidate" ]; then readlink -f "$candidate"; return 0; fi
    done
    sleep 2
  done
  fail "volume $VOLUME_ID did not appear as $nvme or $root/dev/xvdf within $((2 * \${MUA_DEVICE_ATTEMPTS:-90})) s"
}

# Refuses anything but an unmounted target of exactly the volume's size: a wrong device found
# here would otherwise be overwritten.
# (The handler snapshots the volume once this script has succeeded, while it is still attached:
# everything must be on the volume when the script exits, hence the sync and the read-back.)
check_target() {
  local target=$1 expected=$2 actual
  if [ -b "$target" ]; then
    if lsblk -nro MOUNTPOINT "$target" | grep -q .; then
      fail "$target (or a partition of it) is mounted; refusing to write the image onto it"
    fi
    actual=$(blockdev --getsize64 "$target")
  elif [ -f "$target" ]; then
    actual=$(stat -c %s "$target")
  else
    fail "$target is neither a block device nor a file"
  fi
  if [ "$actual" != "$expected" ]; then
    fail "$target holds $actual bytes but the image is for a $expected-byte volume; refusing to write (wrong device?)"
  fi
}

main() {
  fetch "$BLOCKS_SOURCE" "$WORK_DIR/blocks.gz"
  fetch "$MANIFEST_SOURCE" "$WORK_DIR/manifest.txt"
  local target expected
  if [ -n "$DEVICE" ]; then target=$DEVICE; else target=$(find_device); fi
  expected=$(block_tool size "$WORK_DIR/manifest.txt")
  check_target "$target" "$expected"
  # SendCommand has no client token: should the command ever run twice, the runs take turns.
  exec 9<"$target"
  flock 9
  block_tool write "$target" "$WORK_DIR/blocks.gz" "$WORK_DIR/manifest.txt"
  sync || fail "sync failed after writing $target; the image may not be on the volume"
  # Drop the device's cached pages so that verification reads what the volume holds.
  if [ -b "$target" ]; then
    blockdev --flushbufs "$target" || fail "blockdev --flushbufs $target failed; the read-back could not be trusted"
  fi
  block_tool verify "$target" "$WORK_DIR/manifest.txt"
  echo "mirage-unikernel-ami helper: image written to $target and verified"
}

main
`;
}

/**
 * The helper's user data (cloud-init runs it as root at first boot): the helper schedules its own
 * shutdown, which terminates it (InstanceInitiatedShutdownBehavior terminate) with its volumes,
 * should the build never terminate it (an invocation of the handler lost with the helper's id).
 */
export function helperUserData(buildId: string, selfDestructMinutes: number): string {
  if (!Number.isInteger(selfDestructMinutes) || selfDestructMinutes < 1) {
    throw new Error(`helperUserData: selfDestructMinutes must be a whole number of minutes; got ${selfDestructMinutes}`);
  }
  return `#!/bin/bash
# mirage-unikernel-ami build ${shellQuote(buildId)}: this helper must not outlive its build.
shutdown -h +${selfDestructMinutes} 'mirage-unikernel-ami helper: the build did not terminate this instance in time'
`;
}

const SCRIPT_DELIMITER = 'MIRAGE_UNIKERNEL_AMI_SCRIPT';

/**
 * The `commands` parameter of AWS-RunShellScript: the SSM agent runs the commands with /bin/sh,
 * so the bash script is written to a file by a quoted here-document and run with bash.
 */
export function runShellScriptCommands(script: string): string[] {
  return [
    'script_file=$(mktemp)',
    `cat > "$script_file" <<'${SCRIPT_DELIMITER}'`,
    ...script.split('\n'),
    SCRIPT_DELIMITER,
    'bash "$script_file"; status=$?',
    'rm -f "$script_file"',
    'exit $status',
  ];
}
