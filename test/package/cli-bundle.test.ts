/**
 * The CLI ships as one esbuild bundle (scripts/bundle-cli.js) with its own copies of the AWS SDK
 * clients, cut down to the exports the CLI names and the schemas it uses. Run as a user runs it,
 * against local HTTP endpoints standing in for AWS (AWS_ENDPOINT_URL_<SERVICE>): `console` sends
 * GetConsoleOutput and prints the decoded output; `watch` and `builds` read CloudFormation,
 * CloudWatch Logs and EC2.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import * as esbuild from 'esbuild';

const { bundleOptions } = require('../../scripts/bundle-cli.js') as { bundleOptions(outfile: string): esbuild.BuildOptions };

let work: string;
let cli: string;
beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-cli-bundle-'));
  cli = path.join(work, 'mirage-unikernel-ami.js');
  await esbuild.build(bundleOptions(cli));
}, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH, HOME: work, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('the bundled CLI: console sends GetConsoleOutput for the instance and prints the decoded output', async () => {
  const requests: Array<{ method?: string; body: string; authorization?: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      requests.push({ method: req.method, body, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?>\n<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' +
        '<requestId>r-1</requestId><instanceId>i-0123456789abcdef0</instanceId><timestamp>2026-01-01T00:00:00.000Z</timestamp>' +
        `<output>${Buffer.from('Hello from the unikernel\n').toString('base64')}</output></GetConsoleOutputResponse>`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const result = await runCli(['console', 'i-0123456789abcdef0', '--region', 'eu-west-1'], {
      AWS_ENDPOINT_URL_EC2: `http://127.0.0.1:${port}`,
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_CONFIG_FILE: path.join(work, 'none'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(work, 'none'),
    });
    expect({ status: result.status, stdout: result.stdout }).toEqual({ status: 0, stdout: 'Hello from the unikernel\n' });
    expect(requests).toHaveLength(1);
    const form = new URLSearchParams(requests[0].body);
    expect(Object.fromEntries(form)).toEqual({ Action: 'GetConsoleOutput', Version: '2016-11-15', InstanceId: 'i-0123456789abcdef0' });
    expect(requests[0].authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/ec2\/aws4_request/);
  } finally {
    server.close();
  }
});

test('the bundled CLI: inspect reads the example kernel', async () => {
  const result = await runCli(['inspect', path.resolve(__dirname, '..', '..', 'examples', 'hello', 'hello.xen')], {});
  expect(result.status).toBe(0);
  expect(result.stdout).toMatch(/^Bootable: +yes, by PV-GRUB$/m);
});

/**
 * A local endpoint answering CloudFormation, EC2 (query protocol, XML) and CloudWatch Logs (JSON)
 * with one settled stack whose build is recorded complete: enough for the bundled `watch` and
 * `builds` to run every kind of call they make through the trimmed clients.
 */
function awsEndpoint(calls: string[]): http.Server {
  const stackId = 'arn:aws:cloudformation:eu-west-1:123456789012:stack/UnikernelStack/5b8c9f10-0000-11ef-9e2a-0a1b2c3d4e5f';
  const buildId = 'mua-0123456789abcdef';
  const record = 'v=1 outcome=complete started=1767225600 stages=snapshot-started@+5/image-registered@+35/complete@+65 image=ami-0123456789abcdef0 snapshot=snap-0123456789abcdef0 blocks=1 progress=100';
  const member = (fields: Record<string, string>) => `<member>${Object.entries(fields).map(([k, v]) => `<${k}>${v}</${k}>`).join('')}</member>`;
  const query: Record<string, string> = {
    DescribeStacks: `<Stacks>${member({ StackId: stackId, StackName: 'UnikernelStack', StackStatus: 'CREATE_COMPLETE', CreationTime: '2026-01-01T00:00:00Z' })}</Stacks>`,
    DescribeStackResources: `<StackResources>${member({ LogicalResourceId: 'Hello4A628BD4', PhysicalResourceId: buildId, ResourceType: 'Custom::MirageUnikernelAmi', ResourceStatus: 'CREATE_COMPLETE', Timestamp: '2026-01-01T00:01:05Z' })}` +
      `${member({ LogicalResourceId: 'MirageUnikernelAmiBuildInfrastructureHandlerLogs6C819567', PhysicalResourceId: 'handler-logs', ResourceType: 'AWS::Logs::LogGroup', ResourceStatus: 'CREATE_COMPLETE', Timestamp: '2026-01-01T00:00:00Z' })}</StackResources>`,
    DescribeStackEvents: `<StackEvents>${member({ StackId: stackId, EventId: 'e-1', StackName: 'UnikernelStack', LogicalResourceId: 'UnikernelStack', ResourceType: 'AWS::CloudFormation::Stack', Timestamp: '2026-01-01T00:01:05Z', ResourceStatus: 'CREATE_COMPLETE' })}</StackEvents>`,
    DescribeImages: '<imagesSet><item><imageId>ami-0123456789abcdef0</imageId><imageState>available</imageState><creationDate>2026-01-01T00:00:35.000Z</creationDate>' +
      `<tagSet><item><key>mirage-unikernel-ami:build-id</key><value>${buildId}</value></item><item><key>mirage-unikernel-ami:resource</key><value>Hello4A628BD4</value></item>` +
      `<item><key>mirage-unikernel-ami:build-record</key><value>${record}</value></item></tagSet></item></imagesSet>`,
    DescribeSnapshots: '<snapshotSet/>',
    DescribeInstances: '<reservationSet/>',
    DescribeVolumes: '<volumeSet/>',
  };
  const stageLine = (stage: string, at: number) => `2026-01-01T00:00:00.000Z\tr-1\tINFO\t${JSON.stringify({ step: 'stage', buildId, stage, at, imageId: 'ami-0123456789abcdef0', snapshotId: 'snap-0123456789abcdef0', elapsedMs: 0 })}`;
  return http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const target = req.headers['x-amz-target'];
      if (typeof target === 'string') {
        calls.push(target);
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ events: [stageLine('started', 1767225600000), stageLine('complete', 1767225665000)].map((message, i) => ({ eventId: String(i), logStreamName: 's', timestamp: 1767225600000 + i, message })) }));
        return;
      }
      const action = new URLSearchParams(body).get('Action') ?? '';
      calls.push(action);
      const result = query[action];
      const ec2 = action.startsWith('DescribeImages') || ['DescribeSnapshots', 'DescribeInstances', 'DescribeVolumes'].includes(action);
      res.writeHead(result ? 200 : 400, { 'content-type': 'text/xml' });
      res.end(ec2
        ? `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId>${result}</${action}Response>`
        : `<${action}Response xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></${action}Response>`);
    });
  });
}

test('the bundled CLI: watch and builds read CloudFormation, CloudWatch Logs and EC2 through the trimmed clients', async () => {
  const calls: string[] = [];
  const server = awsEndpoint(calls);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const env = {
      AWS_ENDPOINT_URL_CLOUDFORMATION: endpoint,
      AWS_ENDPOINT_URL_EC2: endpoint,
      AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: endpoint,
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_CONFIG_FILE: path.join(work, 'none'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(work, 'none'),
    };
    const settled = await runCli(['watch', 'UnikernelStack', '--region', 'eu-west-1'], env);
    expect(settled.stdout).toMatch(/build mua-0123456789abcdef complete \(recorded\): AMI ami-0123456789abcdef0, snapshot snap-0123456789abcdef0; snapshot-started \+5s, image-registered \+35s, complete \+1m05s/);
    expect(settled.status).toBe(0);
    const byId = await runCli(['watch', '--build', 'mua-0123456789abcdef', 'UnikernelStack', '--region', 'eu-west-1'], env);
    expect(byId.stdout).toMatch(/complete in 1m05s: AMI ami-0123456789abcdef0/);
    expect(byId.status).toBe(0);
    const listed = await runCli(['builds', 'UnikernelStack', '--region', 'eu-west-1'], env);
    expect(listed.stdout).toMatch(/mua-0123456789abcdef {2}Hello4A628BD4 {2}held by CloudFormation \(Hello4A628BD4\), recorded complete\n {2}image +ami-0123456789abcdef0 {2}available/);
    expect(listed.status).toBe(0);
    expect(new Set(calls)).toEqual(new Set(['DescribeStacks', 'DescribeStackResources', 'DescribeStackEvents', 'DescribeImages', 'DescribeSnapshots', 'DescribeInstances', 'DescribeVolumes', 'Logs_20140328.FilterLogEvents']));
  } finally {
    server.close();
  }
});
