import { buildDiskImage, DiskLayout, writeSparseFile } from '../../lib/disk-image';
import { pygrubEntries } from '../fixtures/pygrub';
import { debugfs, e2fsck, extractRegion, fakeKernel, fileEquals, makeTempDir, readBytes, runTool } from './tools';

const GIB = 2 ** 30;
const SECTOR = 512;

let temp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  temp = makeTempDir();
});
afterEach(() => temp.remove());

interface PartitionEntry {
  readonly status: number;
  readonly type: number;
  readonly firstSector: number;
  readonly sectors: number;
}

/** Reads the four primary entries of a DOS partition table (offset 446, 16 bytes each). */
function readPartitionTable(sector: Buffer): PartitionEntry[] {
  return [0, 1, 2, 3].map((i) => {
    const entry = sector.subarray(446 + 16 * i, 446 + 16 * (i + 1));
    return { status: entry[0], type: entry[4], firstSector: entry.readUInt32LE(8), sectors: entry.readUInt32LE(12) };
  });
}

describe.each([1, 3, 16])('MBR layout on a %d GiB volume', (volumeSizeGiB) => {
  test('one Linux partition from sector 2048 to the end, holding a clean filesystem with the kernel', () => {
    // GIVEN
    const kernel = fakeKernel(volumeSizeGiB === 16 ? 64 * 2 ** 20 : 200_000);
    const disk = temp.path('disk.img');

    // WHEN
    const image = buildDiskImage({ kernel, name: 'mirage-hello', layout: DiskLayout.MBR_PARTITION, volumeSizeGiB });
    writeSparseFile(image, disk);

    // THEN the partition table, read here byte by byte and by file(1)
    const firstSector = readBytes(disk, 0, SECTOR);
    expect(firstSector.readUInt16BE(510)).toBe(0x55aa);
    const totalSectors = (volumeSizeGiB * GIB) / SECTOR;
    expect(readPartitionTable(firstSector)).toEqual([
      { status: 0x80, type: 0x83, firstSector: 2048, sectors: totalSectors - 2048 },
      { status: 0, type: 0, firstSector: 0, sectors: 0 },
      { status: 0, type: 0, firstSector: 0, sectors: 0 },
      { status: 0, type: 0, firstSector: 0, sectors: 0 },
    ]);
    expect(runTool('file', ['-b', disk]).stdout).toMatch(
      new RegExp(`^DOS/MBR boot sector; partition 1 : ID=0x83, active, .*startsector 2048, ${totalSectors - 2048} sectors`),
    );

    // THEN the filesystem starts at the partition's first byte
    expect(image.filesystemOffset).toBe(2048 * SECTOR);
    const partition = temp.path('partition.img');
    extractRegion(disk, partition, 2048 * SECTOR, volumeSizeGiB * GIB - 2048 * SECTOR);
    const fsck = e2fsck(partition);
    expect({ status: fsck.status, out: fsck.stdout }).toEqual({ status: 0, out: expect.stringContaining('Pass 5') });
    const dumped = temp.path('kernel.out');
    debugfs(partition, `dump /boot/mirage-hello.xen ${dumped}`);
    expect(fileEquals(dumped, kernel)).toBe(true);
    // Xen's pygrub finds the menu.lst in the first partition and the kernel it names, without arguments
    expect(pygrubEntries(disk)).toEqual([{ title: 'mirage-hello', root: 'd0p0', kernel: '/boot/mirage-hello.xen', args: '' }]);
  });
});

test('the whole-volume layout has no partition table: the filesystem starts at byte 0', () => {
  const disk = temp.path('disk.img');
  const image = buildDiskImage({ kernel: fakeKernel(5000), name: 'hello' });
  writeSparseFile(image, disk);

  expect(image.filesystemOffset).toBe(0);
  expect(readBytes(disk, 0, 1024).every((byte) => byte === 0)).toBe(true);
  expect(e2fsck(disk).status).toBe(0);
});

test('volumes an MBR cannot address are refused with the limit and the way out', () => {
  expect(() => buildDiskImage({ kernel: fakeKernel(10), name: 'hello', layout: DiskLayout.MBR_PARTITION, volumeSizeGiB: 2049 }))
    .toThrow(/at most 2048 GiB.*2049 GiB.*whole-volume layout/);
});
