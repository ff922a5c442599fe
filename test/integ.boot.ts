/**
 * Integration test on a real account: the AMI boots on EC2. For both build strategies and both disk
 * layouts it builds the example kernel's AMI, launches one instance of a paravirtual type from it,
 * and waits until the instance's console shows the example's greeting with its exact kernel
 * arguments: the line PV-GRUB's kernel line handed to the unikernel.
 *
 * `npm run integ:live` deploys it with integ-runner against the account and region in the
 * environment (a PV-GRUB region), runs the assertions and destroys everything after
 * (docs/live-test.md says what it costs, how long it takes, and what to send back if it fails).
 * `npm test` only compares its snapshot (test/integ.boot.ts.snapshot): nothing here can deploy.
 *
 * The console is read by a small function of the assertion stack: GetConsoleOutput answers in
 * base64, and EC2 posts a Xen instance's console some minutes after boot, with no `Latest` on Xen
 * instance types (it is a Nitro feature). The function decodes the output and returns the greeting
 * line it finds; the assertion compares that line exactly and is retried every 30 s for up to 25
 * minutes, inside CloudFormation's hour.
 *
 * PV types are offered only in some Availability Zones: MUA_INTEG_INSTANCE_TYPE picks another PV type
 * (m3.medium by default) and MUA_INTEG_AZ pins the zone, for an account whose zones do not offer it.
 */
import * as path from 'path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { BuildStrategy, DiskLayout, MirageUnikernelAmi, UnikernelKernel } from '../lib';
import { PV_GRUB_REGIONS } from '../lib/pv-grub';

const INSTANCE_TYPE = process.env.MUA_INTEG_INSTANCE_TYPE ?? 'm3.medium';
const AVAILABILITY_ZONE = process.env.MUA_INTEG_AZ;

const app = new App();
const stack = new Stack(app, 'MirageUnikernelAmiIntegBoot');
const vpc = new ec2.Vpc(stack, 'Vpc', {
  natGateways: 0,
  maxAzs: AVAILABILITY_ZONE ? undefined : 2,
  availabilityZones: AVAILABILITY_ZONE ? [AVAILABILITY_ZONE] : undefined,
  subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }],
});

/** Each case: the construct id, its strategy, its layout, and arguments that name the case. */
const CASES = [
  { id: 'HelperWhole', strategy: BuildStrategy.helperInstance({ vpc }), layout: DiskLayout.WHOLE_VOLUME },
  { id: 'HelperMbr', strategy: BuildStrategy.helperInstance({ vpc }), layout: DiskLayout.MBR_PARTITION },
  { id: 'DirectWhole', strategy: BuildStrategy.ebsDirect(), layout: DiskLayout.WHOLE_VOLUME },
  { id: 'DirectMbr', strategy: BuildStrategy.ebsDirect(), layout: DiskLayout.MBR_PARTITION },
].map((c) => ({ ...c, kernelArgs: `integ-boot case=${c.id} "quoted words" --ipv4=10.0.0.2/24` }));

const unikernels = CASES.map((c) => ({
  ...c,
  ami: new MirageUnikernelAmi(stack, c.id, {
    kernel: UnikernelKernel.fromFile(path.join(__dirname, '..', 'examples', 'hello', 'hello.xen')),
    name: `hello-${c.id.toLowerCase()}`,
    kernelArgs: c.kernelArgs,
    layout: c.layout,
    buildStrategy: c.strategy,
    instances: { count: 1, instanceType: new ec2.InstanceType(INSTANCE_TYPE), vpc },
  }),
}));

const integ = new IntegTest(app, 'BootUnikernelAmi', {
  testCases: [stack],
  // Any commercial region with PV-GRUB (integ:live runs it in the environment's region); us-gov-west-1
  // is another partition, with accounts of its own.
  regions: PV_GRUB_REGIONS.filter((region) => !region.startsWith('us-gov-')),
  diffAssets: true,
  stackUpdateWorkflow: false,
});

const assertionStack = integ.node.findAll().find((construct): construct is Stack => Stack.isStack(construct))!;

/**
 * Reads an instance's console and returns the example's greeting line, decoded from base64, or
 * null while EC2 has not posted it yet.
 */
const consoleReader = new lambda.Function(assertionStack, 'ConsoleGreeting', {
  runtime: lambda.Runtime.NODEJS_22_X,
  handler: 'index.handler',
  timeout: Duration.seconds(30),
  code: lambda.Code.fromInline(`
const { EC2Client, GetConsoleOutputCommand } = require('@aws-sdk/client-ec2');
const ec2 = new EC2Client({});
exports.handler = async (event) => {
  const { Output } = await ec2.send(new GetConsoleOutputCommand({ InstanceId: event.instanceId }));
  const text = Output ? Buffer.from(Output, 'base64').toString('utf8') : '';
  const greeting = text.split(/\\r?\\n/).find((line) => line.startsWith('Hello from MirageUnikernelAmi')) ?? null;
  return { greeting, consoleBytes: text.length };
};
`),
});
consoleReader.addToRolePolicy(new iam.PolicyStatement({
  actions: ['ec2:GetConsoleOutput'],
  resources: unikernels.map((u) => stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: u.ami.instances[0].instanceId })),
}));

for (const u of unikernels) {
  integ.assertions
    .invokeFunction({ functionName: consoleReader.functionName, payload: JSON.stringify({ instanceId: u.ami.instances[0].instanceId }) })
    .expect(ExpectedResult.objectLike({
      // The example prints its command line inside double quotes, as given: the exact arguments.
      Payload: Match.serializedJson(Match.objectLike({ greeting: `Hello from MirageUnikernelAmi (cmdline: "${u.kernelArgs}")` })),
    }))
    .waitForAssertions({ totalTimeout: Duration.minutes(25), interval: Duration.seconds(30) });
}
