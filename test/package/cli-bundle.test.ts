/**
 * The CLI ships as one esbuild bundle (scripts/bundle-cli.js) with its own copy of the EC2 client,
 * cut down to the exports the CLI names and the schemas it uses. Run as a user runs it, the bundle's
 * `console` command sends GetConsoleOutput and prints the decoded output: here against a local HTTP
 * endpoint standing in for EC2 (AWS_ENDPOINT_URL_EC2), which checks the request it receives.
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
