/**
 * The handler bundle is built with scripts/sdk-schema-keys.js, which rewrites the AWS SDK's schema
 * files so that unused schemas are tree-shaken. The schemas drive how every request is written and
 * every response read, so the bundled clients must do exactly what the SDK's own build does: here a
 * bundle of the clients made with the plugin (as the handler's is) and the SDK as installed write the
 * same HTTP requests, and read the same responses, for commands whose shapes use the rewritten traits
 * (EC2 query names, XML names, S3 and EBS headers, SSM JSON).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import * as esbuild from 'esbuild';

const { bundleOptions } = require('../../scripts/bundle-handler.js') as { bundleOptions(outfile: string): esbuild.BuildOptions };
const { inlineSchemaKeys } = require('../../scripts/sdk-schema-keys.js') as { inlineSchemaKeys(source: string): string };

type Sdk = Record<string, any>;

const CLIENTS = {
  ec2: ['EC2Client', 'RunInstancesCommand', 'DescribeImagesCommand', 'RegisterImageCommand', 'CreateTagsCommand'],
  s3: ['S3Client', 'PutObjectCommand', 'UploadPartCommand', 'GetObjectCommand'],
  ebs: ['EBSClient', 'PutSnapshotBlockCommand', 'StartSnapshotCommand'],
  ssm: ['SSMClient', 'SendCommandCommand'],
} as const;

let work: string;
let bundled: Sdk;
const reference: Sdk = {};

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-sdk-schemas-'));
  const entry = path.join(work, 'entry.js');
  fs.writeFileSync(entry, Object.entries(CLIENTS)
    .map(([service, names]) => `export { ${names.join(', ')} } from '@aws-sdk/client-${service}';`).join('\n'));
  const outfile = path.join(work, 'clients.js');
  // The handler's own bundle options (the plugin, minification, module entry points), another entry.
  await esbuild.build({ ...bundleOptions(outfile), entryPoints: [entry], nodePaths: [path.resolve(__dirname, '..', '..', 'node_modules')] });
  bundled = require(outfile);
  for (const [service, names] of Object.entries(CLIENTS)) {
    const sdk = require(`@aws-sdk/client-${service}`);
    for (const name of names) {
      reference[name] = sdk[name];
    }
  }
}, 120_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

class Stop extends Error {}

/** A client whose HTTP handler records the request and, if given, answers `response`. */
function client(sdk: Sdk, clientName: string, sent: any[], response?: { status?: number; headers?: Record<string, string>; body: string }) {
  return new sdk[clientName]({
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    maxAttempts: 1,
    requestHandler: {
      handle: async (request: any) => {
        sent.push(request);
        if (response === undefined) {
          throw new Stop('recorded');
        }
        return { response: { statusCode: response.status ?? 200, headers: response.headers ?? {}, body: Readable.from([Buffer.from(response.body)]) } };
      },
    },
  });
}

/** What identifies a request, less what changes from one call to the next (time, signature, ids). */
async function requestOf(request: any) {
  let body = request.body;
  if (ArrayBuffer.isView(body)) {
    body = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  } else if (body !== undefined && typeof body !== 'string') {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk));
    body = Buffer.concat(chunks).toString('utf8');
  }
  const varying = /^(authorization|x-amz-date|x-amz-user-agent|user-agent|amz-sdk-invocation-id|amz-sdk-request|x-amz-content-sha256)$/i;
  const headers = Object.fromEntries(Object.entries(request.headers as Record<string, string>).filter(([name]) => !varying.test(name)).sort());
  return { method: request.method, hostname: request.hostname, path: request.path, query: request.query, headers, body };
}

async function sendWith(sdk: Sdk, clientName: string, commandName: string, input: object, response?: { status?: number; headers?: Record<string, string>; body: string }) {
  const sent: any[] = [];
  let output: unknown;
  try {
    output = await client(sdk, clientName, sent, response).send(new sdk[commandName](input));
  } catch (err) {
    if (!(err instanceof Error && err.message === 'recorded')) throw err;
  }
  if (output !== undefined) {
    delete (output as any).$metadata;
  }
  return { request: await requestOf(sent[0]), output };
}

const REQUESTS: Array<[string, string, object]> = [
  ['EC2Client', 'RunInstancesCommand', {
    ImageId: 'ami-12345678', InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, SubnetId: 'subnet-1',
    SecurityGroupIds: ['sg-1'], IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/p' },
    BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { VolumeSize: 1, VolumeType: 'gp3', DeleteOnTermination: true, Encrypted: true } }],
    TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'mirage-unikernel-ami:managed', Value: 'true' }] }],
    MetadataOptions: { HttpTokens: 'required' }, ClientToken: 'token-1',
  }],
  ['EC2Client', 'RegisterImageCommand', {
    Name: 'hello-1', Architecture: 'x86_64', KernelId: 'aki-5c21674b', RootDeviceName: '/dev/sda1', VirtualizationType: 'paravirtual',
    BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: 'snap-1', DeleteOnTermination: true } }],
    TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'Name', Value: 'hello' }] }],
  }],
  ['EC2Client', 'CreateTagsCommand', { Resources: ['ami-1', 'snap-1'], Tags: [{ Key: 'a', Value: 'b' }] }],
  ['S3Client', 'PutObjectCommand', { Bucket: 'bucket', Key: 'builds/b/progress.json', Body: '{"step":1}', ContentType: 'application/json', ChecksumAlgorithm: 'SHA256' }],
  ['S3Client', 'UploadPartCommand', { Bucket: 'bucket', Key: 'builds/b/disk.img', UploadId: 'u-1', PartNumber: 3, Body: 'part' }],
  ['EBSClient', 'StartSnapshotCommand', { VolumeSize: 1, Encrypted: true, ClientToken: 't', Tags: [{ Key: 'Name', Value: 'hello' }], Timeout: 60 }],
  ['EBSClient', 'PutSnapshotBlockCommand', {
    SnapshotId: 'snap-1', BlockIndex: 7, BlockData: Buffer.alloc(16, 1), DataLength: 16,
    Checksum: 'ZGVhZGJlZWY=', ChecksumAlgorithm: 'SHA256', Progress: 50,
  }],
  ['SSMClient', 'SendCommandCommand', { InstanceIds: ['i-1'], DocumentName: 'AWS-RunShellScript', Parameters: { commands: ['echo hi'] }, TimeoutSeconds: 600 }],
];

test.each(REQUESTS)('%s %s: the bundled client writes the request the SDK writes', async (clientName, commandName, input) => {
  const expected = await sendWith(reference, clientName, commandName, input);
  const actual = await sendWith(bundled, clientName, commandName, input);
  expect(actual.request).toEqual(expected.request);
  // Not a vacuous comparison: the request carries the input's values.
  expect(JSON.stringify(actual.request)).toMatch(/hello|snap-1|ami-|i-1|builds\//);
});

test('EC2 DescribeImages: the bundled client reads the response the SDK reads', async () => {
  const body = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r-1</requestId>
  <imagesSet><item>
    <imageId>ami-1</imageId><imageState>available</imageState><architecture>x86_64</architecture>
    <kernelId>aki-5c21674b</kernelId><rootDeviceName>/dev/sda1</rootDeviceName>
    <blockDeviceMapping><item><deviceName>/dev/sda1</deviceName><ebs><snapshotId>snap-1</snapshotId><volumeSize>1</volumeSize><deleteOnTermination>true</deleteOnTermination></ebs></item></blockDeviceMapping>
    <tagSet><item><key>Name</key><value>hello</value></item></tagSet>
  </item></imagesSet>
</DescribeImagesResponse>`;
  const input = { Filters: [{ Name: 'tag:Name', Values: ['hello'] }], Owners: ['self'] };
  const expected = await sendWith(reference, 'EC2Client', 'DescribeImagesCommand', input, { body });
  const actual = await sendWith(bundled, 'EC2Client', 'DescribeImagesCommand', input, { body });
  expect(actual).toEqual(expected);
  expect((actual.output as any).Images[0].BlockDeviceMappings[0].Ebs.SnapshotId).toBe('snap-1');
});

test('the rewrite turns only computed keys naming the file\'s string constants into those strings', () => {
  const source = [
    'const _xN = "xmlName";',
    'const n0 = "com.amazonaws.ec2";',
    'export var A$ = [3, n0, "A", 0, ["B"], [[0, { [_xN]: "b" }], [0, {a: 1, [_xN]: "c" }]]];',
    'var other = cond ? table[_xN]: x;',
    'var unknown = { [_zZ]: 1 };',
  ].join('\n');
  expect(inlineSchemaKeys(source).split('\n').slice(2)).toEqual([
    'export var A$ = [3, n0, "A", 0, ["B"], [[0, { "xmlName": "b" }], [0, {a: 1, "xmlName": "c" }]]];',
    'var other = cond ? table[_xN]: x;',
    'var unknown = { [_zZ]: 1 };',
  ]);
});
