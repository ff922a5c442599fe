/**
 * Benchmark of the EBS direct build: how much it sends and how many AWS calls it makes for kernels
 * of 1, 16 and 64 MiB, and how long building the image and checksumming every block takes locally.
 *
 * The EBS client here is an in-process FAKE that accepts every call at once: no request leaves
 * the machine, so network time and AWS throttling are NOT measured. Run: npx ts-node bench/ebs-direct.ts
 */
import { randomBytes } from 'crypto';
import * as os from 'os';
import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { buildDiskImage, DiskLayout } from '../lib/disk-image';
import { EBS_SNAPSHOT_BLOCK_BYTES } from '../lib/pv-grub';
import { blockChecksum, uploadSnapshotDirect } from '../lib/unikernel-ami/handler/ebs-direct';
import { StepLog } from '../lib/unikernel-ami/handler/log';

const MIB = 1024 * 1024;
const KERNEL_MIB = [1, 16, 64];
const LAYOUTS = [DiskLayout.WHOLE_VOLUME, DiskLayout.MBR_PARTITION];

/** Accepts StartSnapshot, PutSnapshotBlock and CompleteSnapshot at once, counting them by name. */
class FakeEbsClient {
  readonly calls = new Map<string, number>();

  async send(command: { constructor: { name: string } }): Promise<object> {
    const name = command.constructor.name;
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
    return name === 'StartSnapshotCommand' ? { SnapshotId: 'snap-fake', Status: 'pending' } : {};
  }

  get total(): number {
    return [...this.calls.values()].reduce((sum, count) => sum + count, 0);
  }
}

/**
 * EC2 as the upload sees it: DescribeSnapshots does not know the new snapshot yet (the uploader asks
 * for its state after StartSnapshot); any other call fails the benchmark.
 */
const refusingEc2 = {
  send: async (command: object) => {
    if (command.constructor.name === 'DescribeSnapshotsCommand') {
      throw Object.assign(new Error('The snapshot does not exist.'), { name: 'InvalidSnapshot.NotFound' });
    }
    throw new Error(`the benchmark upload made an unexpected EC2 call: ${command.constructor.name}`);
  },
};

/** Median of a few runs, after one unmeasured warm-up run (JIT), so a busy machine skews it less. */
function medianMillisecondsOf(work: () => void, runs = 5): number {
  work();
  const times = Array.from({ length: runs }, () => {
    const start = process.hrtime.bigint();
    work();
    return Number(process.hrtime.bigint() - start) / 1e6;
  }).sort((a, b) => a - b);
  return times[Math.floor(runs / 2)];
}

async function measure(kernelMiB: number, layout: DiskLayout) {
  const kernel = randomBytes(kernelMiB * MIB);
  let blocksChecksummed = 0;
  const localMs = medianMillisecondsOf(() => {
    blocksChecksummed = 0;
    const image = buildDiskImage({ kernel, name: 'bench', layout, volumeSizeGiB: 1 });
    for (const { data } of image.nonZeroBlocks(EBS_SNAPSHOT_BLOCK_BYTES)) {
      blockChecksum(data);
      blocksChecksummed++;
    }
  });

  const ebs = new FakeEbsClient();
  const result = await uploadSnapshotDirect(ebs as unknown as EBSClient, refusingEc2 as unknown as EC2Client, {
    image: buildDiskImage({ kernel, name: 'bench', layout, volumeSizeGiB: 1 }),
    buildId: `mua-bench${kernelMiB}`,
    volumeSizeGiB: 1,
    tags: [],
    encrypted: false,
    description: 'benchmark',
    log: new StepLog('bench', Date.now, () => {}),
  });
  if (ebs.total !== result.apiCalls || result.blocksSent !== blocksChecksummed) {
    throw new Error(`Counts disagree: fake saw ${ebs.total} calls, upload reports ${result.apiCalls}; ${blocksChecksummed} blocks checksummed, ${result.blocksSent} sent`);
  }
  const kernelRoundedBytes = Math.ceil(kernel.length / EBS_SNAPSHOT_BLOCK_BYTES) * EBS_SNAPSHOT_BLOCK_BYTES;
  return { kernelMiB, layout, kernelRoundedBytes, result, fakeCalls: ebs.total, localMs };
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const kernelMiB of KERNEL_MIB) {
    for (const layout of LAYOUTS) {
      const { kernelRoundedBytes, result, fakeCalls, localMs } = await measure(kernelMiB, layout);
      const ratio = result.bytesSent / kernelRoundedBytes;
      rows.push(`| ${kernelMiB} MiB | ${layout} | ${kernelRoundedBytes / EBS_SNAPSHOT_BLOCK_BYTES} | ${result.blocksSent} | `
        + `${(result.bytesSent / MIB).toFixed(1)} MiB | ${ratio.toFixed(2)}x ${ratio <= 1.1 ? 'ok' : 'over'} | `
        + `${fakeCalls} (goal <= ${result.blocksSent + 10}) ${fakeCalls <= result.blocksSent + 10 ? 'ok' : 'over'} | ${localMs.toFixed(0)} ms |`);
    }
  }
  console.log('EBS direct upload against an in-process FAKE EBS client (accepts every call; the network is not measured).');
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs, 1 GiB volume, kernel of random bytes; local time is the median of 5 runs.\n`);
  console.log('| kernel | layout | kernel blocks (512 KiB, rounded up) | blocks sent | bytes sent | sent / rounded kernel (goal <= 1.1x) | AWS calls before waiting | build image + checksum all blocks |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  rows.forEach((row) => console.log(row));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
