/**
 * A DOS partition table (MBR) with one Linux partition from 1 MiB to the end of the disk, the
 * layout PV-GRUB finds as (hd0,0). PV-GRUB reads the table but never runs MBR boot code, so the
 * code area stays zero.
 */
import { DiskImageError } from './types';

const SECTOR_BYTES = 512;
/** The partition starts at sector 2048 (1 MiB), where fdisk and sfdisk put it. */
export const MBR_PARTITION_OFFSET = 2048 * SECTOR_BYTES;
/** Partition entries hold 32-bit sector numbers: the partition must end by sector 2^32. */
export const MBR_MAX_DISK_BYTES = 2 ** 32 * SECTOR_BYTES;

const PARTITION_TYPE_LINUX = 0x83;
const ACTIVE = 0x80;
/** The CHS geometry partitioning tools assume; addresses beyond it are written as the maximum. */
const HEADS = 255;
const SECTORS_PER_TRACK = 63;
const MAX_CYLINDER = 1023;

/**
 * The first sector of a disk of `diskBytes` bytes, `diskSignature` being a 32-bit disk identifier.
 * @throws DiskImageError when the disk is larger than an MBR can address
 */
export function mbrSector(diskBytes: number, diskSignature: number): Buffer {
  if (diskBytes > MBR_MAX_DISK_BYTES) {
    throw new DiskImageError(
      `The MBR layout addresses at most ${MBR_MAX_DISK_BYTES / 2 ** 30} GiB (32-bit sector numbers), but the volume is ` +
      `${diskBytes / 2 ** 30} GiB: use a smaller volumeSizeGiB or the whole-volume layout.`,
    );
  }
  const firstSector = MBR_PARTITION_OFFSET / SECTOR_BYTES;
  const sectorCount = diskBytes / SECTOR_BYTES - firstSector;
  const sector = Buffer.alloc(SECTOR_BYTES);
  sector.writeUInt32LE(diskSignature >>> 0, 440);
  const entry = 446;
  sector.writeUInt8(ACTIVE, entry);
  chsAddress(firstSector).copy(sector, entry + 1);
  sector.writeUInt8(PARTITION_TYPE_LINUX, entry + 4);
  chsAddress(firstSector + sectorCount - 1).copy(sector, entry + 5);
  sector.writeUInt32LE(firstSector, entry + 8);
  sector.writeUInt32LE(sectorCount, entry + 12);
  sector.writeUInt16LE(0xaa55, 510); // boot signature bytes 55 AA
  return sector;
}

/** The 3-byte CHS form of a sector address: head, sector with cylinder bits 8-9, cylinder bits 0-7. */
function chsAddress(lba: number): Buffer {
  let cylinder = Math.floor(lba / (HEADS * SECTORS_PER_TRACK));
  let head = Math.floor(lba / SECTORS_PER_TRACK) % HEADS;
  let sector = (lba % SECTORS_PER_TRACK) + 1;
  if (cylinder > MAX_CYLINDER) {
    [cylinder, head, sector] = [MAX_CYLINDER, HEADS - 1, SECTORS_PER_TRACK];
  }
  return Buffer.from([head, sector | ((cylinder >> 8) << 6), cylinder & 0xff]);
}
