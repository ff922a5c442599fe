/** Where the ext2 filesystem sits on the volume. PV-GRUB's hd0 AKIs find menu.lst in either place. */
export enum DiskLayout {
  /** The filesystem starts at byte 0 of the volume; menu.lst says `root (hd0)`. */
  WHOLE_VOLUME = 'whole',
  /** A DOS (MBR) partition table with one Linux partition holding the filesystem; menu.lst says `root (hd0,0)`. */
  MBR_PARTITION = 'mbr',
}

/** Bad input to the disk image writer: the message says what was given and what to do instead. */
export class DiskImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiskImageError';
  }
}

/** A run of bytes at a byte offset of the disk. */
export interface DiskExtent {
  /** Byte offset in the disk. */
  readonly offset: number;
  /** The bytes; they may include zeros. */
  readonly data: Uint8Array;
}

/** One fixed-size block of the disk. */
export interface DiskBlock {
  /** Block number: byte offset / block size. */
  readonly index: number;
  /** The block's bytes; `data.length` is the block size. */
  readonly data: Uint8Array;
}
