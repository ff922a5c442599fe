import { EC2Client, GetConsoleOutputCommand } from '@aws-sdk/client-ec2';
import { requireRegion, withCredentials } from '../aws';
import { CliIo, UsageError } from '../io';
import { onePositional, parseOptions } from '../options';

/** `console INSTANCE_ID`: the console output EC2 keeps for an instance. */
export async function consoleCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional, options } = parseOptions(args, ['region']);
  const instanceId = onePositional(positional, 'INSTANCE_ID');
  if (!/^i-[0-9a-f]{8,17}$/.test(instanceId)) {
    throw new UsageError(`'${instanceId}' is not an EC2 instance id (i-0123456789abcdef0)`);
  }
  const ec2 = (io.ec2Client ?? ((region?: string) => new EC2Client({ region })))(options.region);
  await requireRegion(ec2, 'console', 'the instance\'s region');
  // No Latest: EC2 serves the latest output only on Nitro instance types ("This option is supported
  // on instance types that use the Nitro hypervisor"), and the PV types that run these AMIs are Xen.
  // What it serves is the buffered output EC2 posts some minutes after boot (the last 64 KB).
  const result = await withCredentials('console', 'ec2:GetConsoleOutput', () => ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId })));
  if (!result.Output) {
    io.stderr(`mirage-unikernel-ami: ${instanceId} has no console output yet; EC2 publishes it a few minutes after boot\n`);
    return 1;
  }
  io.stdout(Buffer.from(result.Output, 'base64').toString('utf8'));
  return 0;
}
