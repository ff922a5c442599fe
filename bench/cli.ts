/**
 * Benchmark of the command line as a user runs it (`node dist/bin/mirage-unikernel-ami.js`, a
 * fresh process each time), against `mke2fs -t ext2 -d` on the same tree:
 *
 * - `disk KERNEL --out FILE --size-gib 2` vs `mke2fs -q -t ext2 -b 4096 -d TREE FILE 2G`, where TREE
 *   holds boot/<name>.xen and boot/grub/menu.lst, for kernels of 1, 16, 64 and 256 MiB (the example
 *   kernel padded with pseudo-random bytes): wall time (median of 5) and peak RSS (the largest of the
 *   runs), next to Node's own baseline (`node -e 0`).
 * - `inspect KERNEL` for the same kernels, and for gzip-compressed ones, which are reported apart:
 *   checking a gzip kernel's CRC and length means inflating all of it.
 *
 * Run: npx ts-node bench/cli.ts [--root DIR] [--no-build]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createReadStream, createWriteStream } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { pipeline } from 'stream/promises';
import { createGzip } from 'zlib';
import { buildRoot, hasFlag, measureProcess, median, MIB, mib, printTable, ProcessMeasurement, rootFromArgs, writePaddedKernel } from './common';

const KERNEL_SIZES_MIB = [1, 16, 64, 256];
const GZIP_SIZES_MIB = [16, 64, 256];
const RUNS = 5;
const NAME = 'bench';
const VOLUME = '2G';
const VOLUME_GIB = '2';
const MENU_LST = `default 0\ntimeout 0\n\ntitle ${NAME}\nroot (hd0)\nkernel /boot/${NAME}.xen\n`;

function runs(count: number, measure: () => ProcessMeasurement): { ms: number; maxRssKiB: number } {
  const all = Array.from({ length: count }, measure);
  return { ms: median(all.map((m) => m.ms)), maxRssKiB: Math.max(...all.map((m) => m.maxRssKiB)) };
}

async function main(): Promise<void> {
  const root = rootFromArgs();
  if (!hasFlag('--no-build')) {
    buildRoot(root);
  }
  const cli = join(root, 'dist', 'bin', 'mirage-unikernel-ami.js');
  const work = mkdtempSync(join(tmpdir(), 'cli-bench-'));
  try {
    const baseline = runs(RUNS, () => measureProcess(process.execPath, ['-e', '0']));
    const help = runs(RUNS, () => measureProcess(process.execPath, [cli, '--help']));
    const diskRows: string[][] = [];
    const inspectRows: string[][] = [];
    for (const sizeMiB of KERNEL_SIZES_MIB) {
      const tree = join(work, 'tree');
      mkdirSync(join(tree, 'boot', 'grub'), { recursive: true });
      const kernel = join(tree, 'boot', `${NAME}.xen`);
      writePaddedKernel(kernel, sizeMiB * MIB);
      writeFileSync(join(tree, 'boot', 'grub', 'menu.lst'), MENU_LST);
      const out = join(work, 'out.img');

      // Interleaved, so that a busy machine slows both alike.
      const disk: ProcessMeasurement[] = [];
      const mke2fs: ProcessMeasurement[] = [];
      for (let run = 0; run < RUNS; run++) {
        rmSync(out, { force: true });
        disk.push(measureProcess(process.execPath, [cli, 'disk', kernel, '--out', out, '--name', NAME, '--size-gib', VOLUME_GIB]));
        rmSync(out, { force: true });
        mke2fs.push(measureProcess('mke2fs', ['-q', '-t', 'ext2', '-b', '4096', '-d', tree, out, VOLUME]));
      }
      rmSync(out, { force: true });
      const diskMs = median(disk.map((m) => m.ms));
      const mke2fsMs = median(mke2fs.map((m) => m.ms));
      const diskRss = Math.max(...disk.map((m) => m.maxRssKiB));
      diskRows.push([
        `${sizeMiB} MiB`, `${diskMs.toFixed(0)} ms`, `${mke2fsMs.toFixed(0)} ms`, `${(diskMs / mke2fsMs).toFixed(2)}x`,
        mib(diskRss), mib(diskRss - baseline.maxRssKiB), `${(Math.max(...mke2fs.map((m) => m.maxRssKiB)) / 1024).toFixed(1)} MiB`,
      ]);
      const inspect = runs(RUNS, () => measureProcess(process.execPath, [cli, 'inspect', kernel]));
      inspectRows.push([`${sizeMiB} MiB`, 'ELF', `${inspect.ms.toFixed(0)} ms`, mib(inspect.maxRssKiB), mib(inspect.maxRssKiB - baseline.maxRssKiB)]);
      if (GZIP_SIZES_MIB.includes(sizeMiB)) {
        const gz = join(work, `${NAME}.xen.gz`);
        await pipeline(createReadStream(kernel), createGzip({ level: 1 }), createWriteStream(gz));
        const inspectGz = runs(RUNS, () => measureProcess(process.execPath, [cli, 'inspect', gz]));
        inspectRows.push([
          `${sizeMiB} MiB (${(readFileSync(gz).length / MIB).toFixed(0)} MiB gzip)`, 'gzip', `${inspectGz.ms.toFixed(0)} ms`,
          mib(inspectGz.maxRssKiB), mib(inspectGz.maxRssKiB - baseline.maxRssKiB),
        ]);
        rmSync(gz);
      }
      rmSync(tree, { recursive: true, force: true });
    }
    console.log(`Command line of ${root}, whole processes, Node ${process.version}; median time of ${RUNS} runs, largest peak RSS.`);
    console.log(`Node baseline (node -e 0): ${baseline.ms.toFixed(0)} ms, peak RSS ${mib(baseline.maxRssKiB)}; ` +
      `'mirage-unikernel-ami --help': ${help.ms.toFixed(0)} ms, ${mib(help.maxRssKiB)}.\n`);
    console.log(`disk (${VOLUME_GIB} GiB volume) vs mke2fs -t ext2 -d on the same tree:\n`);
    printTable(['kernel', 'disk time', 'mke2fs time', 'disk / mke2fs', 'disk peak RSS', 'above Node baseline', 'mke2fs peak RSS'], diskRows);
    console.log('\ninspect:\n');
    printTable(['kernel', 'form', 'inspect time', 'peak RSS', 'above Node baseline'], inspectRows);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
