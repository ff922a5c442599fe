import { EC2Client, GetConsoleOutputCommand } from '@aws-sdk/client-ec2';
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
  await requireRegion(ec2);
  // Latest=true asks for the most recent output; EC2 keeps the last 64 KB of a PV console.
  const result = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
  if (!result.Output) {
    io.stderr(`mirage-unikernel-ami: ${instanceId} has no console output yet; EC2 publishes it a few minutes after boot\n`);
    return 1;
  }
  io.stdout(Buffer.from(result.Output, 'base64').toString('utf8'));
  return 0;
}

/**
 * The client's region, from --region or the SDK's own chain (AWS_REGION, the profile's region); the
 * SDK would otherwise fail the call with a bare "Region is missing".
 */
async function requireRegion(ec2: EC2Client): Promise<void> {
  let region: string | undefined;
  try {
    region = await ec2.config.region();
  } catch {
    region = undefined;
  }
  if (!region) {
    throw new UsageError('console needs the instance\'s region: pass --region REGION (e.g. --region eu-west-1) or set AWS_REGION');
  }
}
