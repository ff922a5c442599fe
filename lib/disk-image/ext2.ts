/**
 * An ext2 filesystem that GRUB 0.97 (which PV-GRUB is built from) can read, planned from the
 * kernel's SIZE alone: its metadata as extents, and the runs of blocks the kernel's bytes go to.
 *
 * GRUB 0.97's stage2/fsys_ext2fs.c checks only the superblock magic, assumes 128-byte inodes,
 * reads `name_len` as one byte followed by `file_type`, and maps blocks through direct, indirect,
 * double- and triple-indirect pointers. So the filesystem is revision 1 with 128-byte inodes and
 * only `filetype` and `sparse_super`: no extents, dir_index, resize_inode, 64bit, flex_bg or checksums.
 *
 * Block size is 4 KiB: mke2fs's choice for volumes of 512 MiB and more, 8 block groups per GiB
 * instead of 128 with 1 KiB blocks, volumes up to 16 TiB with 32-bit block numbers (1 KiB blocks
 * stop at 4 TiB), and GRUB 0.97's 32 KiB FSYS_BUF holds its 4 KiB block buffers. Double-indirect
 * blocks then reach 4 GiB, more than any kernel here (see MAX_FILE_BYTES).
 *
 * The filesystem is as small as its files allow, in whole block groups (see planExt2): every group
 * has a block bitmap that is not zero (without flex_bg, e2fsck wants a group's bitmaps inside it),
 * so a filesystem spanning the volume would cost a snapshot one written block per 128 MiB.
 */
import { createHash } from 'crypto';

/** Filesystem block size. */
export const EXT2_BLOCK_BYTES = 4096;
/** A group is as many blocks as its one-block bitmap has bits. */
const BLOCKS_PER_GROUP = 8 * EXT2_BLOCK_BYTES;
const INODE_BYTES = 128;
/**
 * One inode table block per group: the filesystem holds six files, and a small inode table keeps
 * group 0's metadata, the directories and the kernel in one contiguous run (mke2fs's default of
 * 8192 inodes per group would put a 1 MiB table, zeros but for its first block, before the files).
 * e2fsck accepts down to one block's worth (32 inodes of 128 bytes).
 */
const INODES_PER_GROUP = 32;
const INODE_TABLE_BLOCKS = (INODES_PER_GROUP * INODE_BYTES) / EXT2_BLOCK_BYTES;
const GROUP_DESCRIPTOR_BYTES = 32;
const SUPERBLOCK_BYTES = 1024;
/** The primary superblock is 1024 bytes into the filesystem, whatever the block size. */
const SUPERBLOCK_OFFSET = 1024;
/** s_blocks_count is 32-bit without the 64bit feature. */
const MAX_BLOCKS_COUNT = 2 ** 32 - 1;
const ADDRESSES_PER_BLOCK = EXT2_BLOCK_BYTES / 4;
const DIRECT_BLOCKS = 12;

/**
 * Largest file written. Without the large_file feature ext2 regular files stay below 2 GiB, and
 * GRUB 0.97 keeps file sizes and positions in a C `int`.
 */
export const MAX_FILE_BYTES = 2 ** 31 - 1;

const FEATURE_INCOMPAT_FILETYPE = 0x0002;
const FEATURE_RO_COMPAT_SPARSE_SUPER = 0x0001;
/** Every timestamp: a constant, so the same inputs give the same bytes. */
const TIMESTAMP = 0;

const ROOT_INODE = 2;
const FIRST_NON_RESERVED_INODE = 11;
const LOST_FOUND_INODE = 11;
const BOOT_INODE = 12;
const GRUB_INODE = 13;
const MENU_LST_INODE = 14;
const KERNEL_INODE = 15;
const USED_INODES = KERNEL_INODE;
const DIRECTORY_COUNT = 4;

/** mke2fs gives lost+found 16 KiB up front so e2fsck can reconnect files without allocating. */
const LOST_FOUND_BLOCKS = 16384 / EXT2_BLOCK_BYTES;
/** Blocks of everything but the kernel: root, lost+found, /boot, /boot/grub, menu.lst. */
const FIXED_FILE_BLOCKS = 1 + LOST_FOUND_BLOCKS + 1 + 1 + 1;

const MODE_DIRECTORY = 0o040755;
const MODE_REGULAR_FILE = 0o100644;
const DIR_ENTRY_FILE = 1;
const DIR_ENTRY_DIRECTORY = 2;

/** A run of bytes at a byte offset of the filesystem. */
export interface FsExtent {
  readonly offset: number;
  readonly data: Uint8Array;
}

/** Consecutive blocks. */
interface BlockRun {
  readonly first: number;
  readonly count: number;
}

/** Where groups and their metadata lie, for a filesystem of a given byte size. */
class Geometry {
  readonly blocksCount: number;
  readonly groupCount: number;
  readonly gdtBlocks: number;

  constructor(fsBytes: number) {
    let blocksCount = Math.min(Math.floor(fsBytes / EXT2_BLOCK_BYTES), MAX_BLOCKS_COUNT);
    for (;;) {
      const groupCount = Math.ceil(blocksCount / BLOCKS_PER_GROUP);
      const gdtBlocks = Math.ceil((groupCount * GROUP_DESCRIPTOR_BYTES) / EXT2_BLOCK_BYTES);
      const lastGroup = groupCount - 1;
      const lastGroupBlocks = blocksCount - lastGroup * BLOCKS_PER_GROUP;
      // Like mke2fs, drop a last group too small to hold its own bitmaps and inode table.
      if (lastGroupBlocks > metadataBlocks(lastGroup, gdtBlocks)) {
        this.blocksCount = blocksCount;
        this.groupCount = groupCount;
        this.gdtBlocks = gdtBlocks;
        return;
      }
      blocksCount -= lastGroupBlocks;
    }
  }

  groupStart(group: number): number {
    return group * BLOCKS_PER_GROUP;
  }

  groupBlocks(group: number): number {
    return Math.min(BLOCKS_PER_GROUP, this.blocksCount - this.groupStart(group));
  }

  metadataBlocks(group: number): number {
    return metadataBlocks(group, this.gdtBlocks);
  }

  blockBitmap(group: number): number {
    return this.groupStart(group) + (hasSuperblock(group) ? 1 + this.gdtBlocks : 0);
  }

  inodeBitmap(group: number): number {
    return this.blockBitmap(group) + 1;
  }

  inodeTable(group: number): number {
    return this.blockBitmap(group) + 2;
  }

  /** Blocks left for files once every group's metadata is placed. */
  fileBlocks(): number {
    let blocks = 0;
    for (let group = 0; group < this.groupCount; group++) {
      blocks += this.groupBlocks(group) - this.metadataBlocks(group);
    }
    return blocks;
  }
}

/** sparse_super: superblock and descriptor backups only in groups 0, 1 and powers of 3, 5 and 7. */
function hasSuperblock(group: number): boolean {
  return group <= 1 || isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

function isPowerOf(value: number, base: number): boolean {
  let power = base;
  while (power < value) {
    power *= base;
  }
  return power === value;
}

function metadataBlocks(group: number, gdtBlocks: number): number {
  return (hasSuperblock(group) ? 1 + gdtBlocks : 0) + 2 + INODE_TABLE_BLOCKS;
}

/**
 * Hands out blocks in ascending order from the first free block of group 0, stepping over each
 * group's metadata. Keeping the kernel low on the disk also keeps it within GRUB 0.97's reach: it
 * computes sector numbers in a C `int`, so it cannot read past 1 TiB.
 */
class BlockAllocator {
  private nextBlock: number;

  constructor(private readonly geometry: Geometry) {
    this.nextBlock = geometry.metadataBlocks(0);
  }

  take(count: number): BlockRun[] {
    const runs: BlockRun[] = [];
    let remaining = count;
    while (remaining > 0) {
      const group = Math.floor(this.nextBlock / BLOCKS_PER_GROUP);
      const firstFree = this.geometry.groupStart(group) + this.geometry.metadataBlocks(group);
      const groupEnd = this.geometry.groupStart(group) + this.geometry.groupBlocks(group);
      const first = Math.max(this.nextBlock, firstFree);
      const length = Math.min(remaining, groupEnd - first);
      runs.push({ first, count: length });
      remaining -= length;
      this.nextBlock = first + length;
    }
    return runs;
  }

  takeBlocks(count: number): number[] {
    return this.take(count).flatMap((run) => Array.from({ length: run.count }, (_, i) => run.first + i));
  }

  /** Blocks in use in a group: allocation is contiguous, so they are a prefix of the group. */
  usedBlocks(group: number): number {
    const start = this.geometry.groupStart(group);
    const allocatedUpTo = Math.min(Math.max(this.nextBlock, start), start + this.geometry.groupBlocks(group));
    return Math.max(allocatedUpTo - start, this.geometry.metadataBlocks(group));
  }
}

/** Indirect blocks a file of `dataBlocks` blocks needs (no file here reaches triple-indirect). */
function indirectBlocks(dataBlocks: number): number {
  const beyondDirect = dataBlocks - DIRECT_BLOCKS;
  if (beyondDirect <= 0) {
    return 0;
  }
  if (beyondDirect <= ADDRESSES_PER_BLOCK) {
    return 1;
  }
  return 2 + Math.ceil((beyondDirect - ADDRESSES_PER_BLOCK) / ADDRESSES_PER_BLOCK);
}

function blocksOf(bytes: number): number {
  return Math.ceil(bytes / EXT2_BLOCK_BYTES);
}

/** The largest kernel file a filesystem of `fsBytes` bytes holds next to the fixed files. */
export function maxKernelFileBytes(fsBytes: number): number {
  const available = new Geometry(fsBytes).fileBlocks() - FIXED_FILE_BLOCKS;
  let dataBlocks = Math.min(available, blocksOf(MAX_FILE_BYTES));
  while (dataBlocks > 0 && dataBlocks + indirectBlocks(dataBlocks) > available) {
    dataBlocks--;
  }
  return Math.min(dataBlocks * EXT2_BLOCK_BYTES, MAX_FILE_BYTES);
}

/** What goes into the filesystem. */
export interface Ext2Contents {
  /** Size of /boot/<kernelFileName> in bytes; must fit (see maxKernelFileBytes). */
  readonly kernelBytes: number;
  readonly kernelFileName: string;
  /** Bytes of /boot/grub/menu.lst, at most one block. */
  readonly menuLst: Uint8Array;
  /** Seed of the filesystem UUID: a digest of the inputs, so equal inputs give equal bytes. */
  readonly uuidSeed: string;
}

/** Where `length` bytes of the kernel go: `offset` is a byte offset of the filesystem. */
export interface FsKernelRun {
  readonly offset: number;
  readonly length: number;
}

/** The filesystem, without the kernel's bytes. */
export interface Ext2Plan {
  /** Size of the filesystem: whole block groups, at most the space it was given. */
  readonly fsBytes: number;
  /** Every non-kernel region that is not zero, sorted by offset; repeated blocks share one buffer. */
  readonly metadata: readonly FsExtent[];
  /** Where the kernel's bytes go, in the kernel's order; the offsets ascend. */
  readonly kernelRuns: readonly FsKernelRun[];
}

/**
 * The smallest filesystem, in whole block groups, that holds the files, and never more than
 * `maxFsBytes`. A last group of full size costs nothing: its free blocks are zero bits of the
 * group's one bitmap block. The rest of the volume stays unused until resize2fs grows the
 * filesystem over it (possible offline even without resize_inode).
 */
function compactGeometry(maxFsBytes: number, neededFileBlocks: number): Geometry {
  const maxBlocks = Math.min(Math.floor(maxFsBytes / EXT2_BLOCK_BYTES), MAX_BLOCKS_COUNT);
  for (let groups = 1; ; groups++) {
    const blocks = Math.min(groups * BLOCKS_PER_GROUP, maxBlocks);
    const geometry = new Geometry(blocks * EXT2_BLOCK_BYTES);
    if (geometry.fileBlocks() >= neededFileBlocks || blocks === maxBlocks) {
      return geometry;
    }
  }
}

/**
 * Lays out the filesystem for a kernel of `contents.kernelBytes` bytes, in at most `maxFsBytes`
 * bytes. Only the kernel's size is needed: its bytes go, in order, to `kernelRuns`.
 */
export function planExt2(maxFsBytes: number, contents: Ext2Contents): Ext2Plan {
  const kernelDataBlocks = blocksOf(contents.kernelBytes);
  const kernelIndirectCount = indirectBlocks(kernelDataBlocks);
  const geometry = compactGeometry(maxFsBytes, FIXED_FILE_BLOCKS + kernelDataBlocks + kernelIndirectCount);
  const allocator = new BlockAllocator(geometry);
  const metadata: FsExtent[] = [];
  const writeBlocks = (block: number, data: Uint8Array) => metadata.push({ offset: block * EXT2_BLOCK_BYTES, data });

  const [rootBlock] = allocator.takeBlocks(1);
  const lostFoundBlocks = allocator.takeBlocks(LOST_FOUND_BLOCKS);
  const [bootBlock] = allocator.takeBlocks(1);
  const [grubBlock] = allocator.takeBlocks(1);
  const [menuLstBlock] = allocator.takeBlocks(1);
  // Indirect blocks go before the data so that the kernel lies in one run per group.
  const kernelIndirectBlocks = allocator.takeBlocks(kernelIndirectCount);
  const kernelBlockRuns = allocator.take(kernelDataBlocks);

  writeBlocks(rootBlock, directoryBlock([
    { inode: ROOT_INODE, name: '.', type: DIR_ENTRY_DIRECTORY },
    { inode: ROOT_INODE, name: '..', type: DIR_ENTRY_DIRECTORY },
    { inode: LOST_FOUND_INODE, name: 'lost+found', type: DIR_ENTRY_DIRECTORY },
    { inode: BOOT_INODE, name: 'boot', type: DIR_ENTRY_DIRECTORY },
  ]));
  writeBlocks(lostFoundBlocks[0], directoryBlock([
    { inode: LOST_FOUND_INODE, name: '.', type: DIR_ENTRY_DIRECTORY },
    { inode: ROOT_INODE, name: '..', type: DIR_ENTRY_DIRECTORY },
  ]));
  for (const block of lostFoundBlocks.slice(1)) {
    writeBlocks(block, directoryBlock([]));
  }
  writeBlocks(bootBlock, directoryBlock([
    { inode: BOOT_INODE, name: '.', type: DIR_ENTRY_DIRECTORY },
    { inode: ROOT_INODE, name: '..', type: DIR_ENTRY_DIRECTORY },
    { inode: GRUB_INODE, name: 'grub', type: DIR_ENTRY_DIRECTORY },
    { inode: KERNEL_INODE, name: contents.kernelFileName, type: DIR_ENTRY_FILE },
  ]));
  writeBlocks(grubBlock, directoryBlock([
    { inode: GRUB_INODE, name: '.', type: DIR_ENTRY_DIRECTORY },
    { inode: BOOT_INODE, name: '..', type: DIR_ENTRY_DIRECTORY },
    { inode: MENU_LST_INODE, name: 'menu.lst', type: DIR_ENTRY_FILE },
  ]));
  writeBlocks(menuLstBlock, contents.menuLst);

  const kernelMap = mapFileBlocks(kernelBlockRuns, kernelIndirectBlocks);
  kernelIndirectBlocks.forEach((block, i) => writeBlocks(block, kernelMap.indirectData[i]));
  const kernelRuns: FsKernelRun[] = [];
  let fileOffset = 0;
  for (const run of kernelBlockRuns) {
    const length = Math.min(run.count * EXT2_BLOCK_BYTES, contents.kernelBytes - fileOffset);
    kernelRuns.push({ offset: run.first * EXT2_BLOCK_BYTES, length });
    fileOffset += length;
  }

  const inodes = Buffer.alloc(USED_INODES * INODE_BYTES);
  const writeInode = (inode: number, fields: InodeFields) => encodeInode(fields).copy(inodes, (inode - 1) * INODE_BYTES);
  writeInode(ROOT_INODE, { mode: MODE_DIRECTORY, links: 4, size: EXT2_BLOCK_BYTES, blocks: [rootBlock], dataBlocks: 1 });
  writeInode(LOST_FOUND_INODE, {
    mode: MODE_DIRECTORY, links: 2, size: LOST_FOUND_BLOCKS * EXT2_BLOCK_BYTES, blocks: lostFoundBlocks, dataBlocks: LOST_FOUND_BLOCKS,
  });
  writeInode(BOOT_INODE, { mode: MODE_DIRECTORY, links: 3, size: EXT2_BLOCK_BYTES, blocks: [bootBlock], dataBlocks: 1 });
  writeInode(GRUB_INODE, { mode: MODE_DIRECTORY, links: 2, size: EXT2_BLOCK_BYTES, blocks: [grubBlock], dataBlocks: 1 });
  writeInode(MENU_LST_INODE, {
    mode: MODE_REGULAR_FILE, links: 1, size: contents.menuLst.length, blocks: [menuLstBlock], dataBlocks: 1,
  });
  writeInode(KERNEL_INODE, {
    mode: MODE_REGULAR_FILE, links: 1, size: contents.kernelBytes,
    blocks: kernelMap.inodeBlocks, dataBlocks: kernelDataBlocks + kernelIndirectBlocks.length,
  });

  const groupFreeBlocks: number[] = [];
  const bitmaps = new BitmapCache();
  for (let group = 0; group < geometry.groupCount; group++) {
    const usedBlocks = allocator.usedBlocks(group);
    groupFreeBlocks.push(geometry.groupBlocks(group) - usedBlocks);
    writeBlocks(geometry.blockBitmap(group), bitmaps.get(usedBlocks, geometry.groupBlocks(group)));
    writeBlocks(geometry.inodeBitmap(group), bitmaps.get(group === 0 ? USED_INODES : 0, INODES_PER_GROUP));
  }
  writeBlocks(geometry.inodeTable(0), inodes);

  const descriptors = encodeGroupDescriptors(geometry, groupFreeBlocks);
  const superblock = {
    geometry,
    freeBlocks: groupFreeBlocks.reduce((sum, free) => sum + free, 0),
    uuid: uuidFromSeed(contents.uuidSeed),
  };
  for (let group = 0; group < geometry.groupCount; group++) {
    if (hasSuperblock(group)) {
      const start = geometry.groupStart(group);
      metadata.push({ offset: group === 0 ? SUPERBLOCK_OFFSET : start * EXT2_BLOCK_BYTES, data: encodeSuperblock(superblock, group) });
      writeBlocks(start + 1, descriptors);
    }
  }
  return {
    fsBytes: geometry.blocksCount * EXT2_BLOCK_BYTES,
    metadata: metadata.filter((extent) => extent.data.length > 0).sort((a, b) => a.offset - b.offset),
    kernelRuns,
  };
}

interface FileBlockMap {
  /** The inode's 15 block pointers. */
  readonly inodeBlocks: number[];
  /** Contents of each indirect block, in the order the blocks were given. */
  readonly indirectData: Buffer[];
}

/** Fills the inode's pointers and the indirect blocks (order: single, double, then the double's children). */
function mapFileBlocks(dataRuns: BlockRun[], indirect: number[]): FileBlockMap {
  const dataBlocks: number[] = [];
  for (const run of dataRuns) {
    for (let i = 0; i < run.count; i++) {
      dataBlocks.push(run.first + i);
    }
  }
  const indirectData = indirect.map(() => Buffer.alloc(EXT2_BLOCK_BYTES));
  const inodeBlocks = dataBlocks.slice(0, DIRECT_BLOCKS);
  const fillPointers = (target: Buffer, pointers: number[]) => pointers.forEach((p, i) => target.writeUInt32LE(p, 4 * i));
  if (indirect.length > 0) {
    inodeBlocks[DIRECT_BLOCKS] = indirect[0];
    fillPointers(indirectData[0], dataBlocks.slice(DIRECT_BLOCKS, DIRECT_BLOCKS + ADDRESSES_PER_BLOCK));
  }
  if (indirect.length > 1) {
    inodeBlocks[DIRECT_BLOCKS + 1] = indirect[1];
    const children = indirect.slice(2);
    fillPointers(indirectData[1], children);
    children.forEach((_, i) => {
      const first = DIRECT_BLOCKS + ADDRESSES_PER_BLOCK * (i + 1);
      fillPointers(indirectData[2 + i], dataBlocks.slice(first, first + ADDRESSES_PER_BLOCK));
    });
  }
  return { inodeBlocks, indirectData };
}

interface DirectoryEntry {
  readonly inode: number;
  readonly name: string;
  readonly type: number;
}

/** One directory block; the last entry's record stretches to the end of the block, an empty block is one unused record. */
function directoryBlock(entries: DirectoryEntry[]): Buffer {
  const block = Buffer.alloc(EXT2_BLOCK_BYTES);
  if (entries.length === 0) {
    block.writeUInt16LE(EXT2_BLOCK_BYTES, 4);
    return block;
  }
  let offset = 0;
  entries.forEach((entry, i) => {
    const name = Buffer.from(entry.name, 'ascii');
    const recordLength = i === entries.length - 1 ? EXT2_BLOCK_BYTES - offset : (8 + name.length + 3) & ~3;
    block.writeUInt32LE(entry.inode, offset);
    block.writeUInt16LE(recordLength, offset + 4);
    block.writeUInt8(name.length, offset + 6);
    block.writeUInt8(entry.type, offset + 7);
    name.copy(block, offset + 8);
    offset += recordLength;
  });
  return block;
}

interface InodeFields {
  readonly mode: number;
  readonly links: number;
  readonly size: number;
  /** Up to 15 block pointers. */
  readonly blocks: number[];
  /** Data and indirect blocks, for i_blocks. */
  readonly dataBlocks: number;
}

function encodeInode(fields: InodeFields): Buffer {
  const inode = Buffer.alloc(INODE_BYTES);
  inode.writeUInt16LE(fields.mode, 0);
  inode.writeUInt32LE(fields.size, 4);
  for (const offset of [8, 12, 16]) {
    inode.writeUInt32LE(TIMESTAMP, offset); // atime, ctime, mtime
  }
  inode.writeUInt16LE(fields.links, 26);
  inode.writeUInt32LE((fields.dataBlocks * EXT2_BLOCK_BYTES) / 512, 28); // i_blocks counts 512-byte sectors
  fields.blocks.forEach((block, i) => inode.writeUInt32LE(block, 40 + 4 * i));
  return inode;
}

/** Bitmaps with the first `used` bits set and the padding bits past `valid` set, as e2fsck expects; equal ones are shared. */
class BitmapCache {
  private readonly bitmaps = new Map<string, Buffer>();

  get(used: number, valid: number): Buffer {
    const key = `${used}/${valid}`;
    let bitmap = this.bitmaps.get(key);
    if (!bitmap) {
      bitmap = Buffer.alloc(EXT2_BLOCK_BYTES);
      setBits(bitmap, 0, used);
      setBits(bitmap, valid, 8 * EXT2_BLOCK_BYTES);
      this.bitmaps.set(key, bitmap);
    }
    return bitmap;
  }
}

function setBits(bitmap: Buffer, from: number, to: number): void {
  let bit = from;
  for (; bit < to && bit % 8 !== 0; bit++) {
    bitmap[bit >> 3] |= 1 << (bit & 7);
  }
  const wholeBytesEnd = to >> 3;
  if (bit >> 3 < wholeBytesEnd) {
    bitmap.fill(0xff, bit >> 3, wholeBytesEnd);
    bit = wholeBytesEnd * 8;
  }
  for (; bit < to; bit++) {
    bitmap[bit >> 3] |= 1 << (bit & 7);
  }
}

function encodeGroupDescriptors(geometry: Geometry, groupFreeBlocks: number[]): Buffer {
  const table = Buffer.alloc(geometry.gdtBlocks * EXT2_BLOCK_BYTES);
  for (let group = 0; group < geometry.groupCount; group++) {
    const offset = group * GROUP_DESCRIPTOR_BYTES;
    table.writeUInt32LE(geometry.blockBitmap(group), offset);
    table.writeUInt32LE(geometry.inodeBitmap(group), offset + 4);
    table.writeUInt32LE(geometry.inodeTable(group), offset + 8);
    table.writeUInt16LE(groupFreeBlocks[group], offset + 12);
    table.writeUInt16LE(INODES_PER_GROUP - (group === 0 ? USED_INODES : 0), offset + 14);
    table.writeUInt16LE(group === 0 ? DIRECTORY_COUNT : 0, offset + 16);
  }
  return table;
}

interface SuperblockFields {
  readonly geometry: Geometry;
  readonly freeBlocks: number;
  readonly uuid: Buffer;
}

function encodeSuperblock({ geometry, freeBlocks, uuid }: SuperblockFields, group: number): Buffer {
  const sb = Buffer.alloc(SUPERBLOCK_BYTES);
  const inodesCount = geometry.groupCount * INODES_PER_GROUP;
  sb.writeUInt32LE(inodesCount, 0);
  sb.writeUInt32LE(geometry.blocksCount, 4);
  sb.writeUInt32LE(0, 8); // no blocks reserved for root: nothing writes to this filesystem after the build
  sb.writeUInt32LE(freeBlocks, 12);
  sb.writeUInt32LE(inodesCount - USED_INODES, 16);
  sb.writeUInt32LE(0, 20); // first data block: 0 for blocks larger than 1 KiB
  sb.writeUInt32LE(Math.log2(EXT2_BLOCK_BYTES) - 10, 24); // log block size
  sb.writeUInt32LE(Math.log2(EXT2_BLOCK_BYTES) - 10, 28); // log fragment size
  sb.writeUInt32LE(BLOCKS_PER_GROUP, 32);
  sb.writeUInt32LE(BLOCKS_PER_GROUP, 36); // fragments per group
  sb.writeUInt32LE(INODES_PER_GROUP, 40);
  sb.writeUInt32LE(TIMESTAMP, 44); // mount time
  sb.writeUInt32LE(TIMESTAMP, 48); // write time
  sb.writeInt16LE(-1, 54); // max mount count: no mount-count-based checks
  sb.writeUInt16LE(0xef53, 56); // magic
  sb.writeUInt16LE(1, 58); // state: cleanly unmounted
  sb.writeUInt16LE(1, 60); // errors: continue
  sb.writeUInt32LE(TIMESTAMP, 64); // last check
  sb.writeUInt32LE(0, 72); // creator OS: Linux
  sb.writeUInt32LE(1, 76); // revision 1 (dynamic)
  sb.writeUInt32LE(FIRST_NON_RESERVED_INODE, 84);
  sb.writeUInt16LE(INODE_BYTES, 88);
  sb.writeUInt16LE(Math.min(group, 0xffff), 90); // block group of this copy; e2fsprogs caps it the same way
  sb.writeUInt32LE(FEATURE_INCOMPAT_FILETYPE, 96);
  sb.writeUInt32LE(FEATURE_RO_COMPAT_SPARSE_SUPER, 100);
  uuid.copy(sb, 104);
  return sb;
}

/** A UUID (RFC 9562 version 8, custom) from a digest of the inputs: stable for the same inputs, distinct otherwise. */
function uuidFromSeed(seed: string): Buffer {
  const uuid = createHash('sha256').update(seed).digest().subarray(0, 16);
  uuid[6] = (uuid[6] & 0x0f) | 0x80;
  uuid[8] = (uuid[8] & 0x3f) | 0x80;
  return Buffer.from(uuid);
}
