/**
 * Compares test/integ.hello.ts with its committed snapshot without deploying, as integ-runner's
 * snapshot test does: synthesize the app with integ-runner's context and compare every stack template.
 *
 * integ-runner itself cannot read this package's cloud assemblies yet (it reads schema 53, aws-cdk-lib
 * 2.276 writes 55), so this test does its comparison. The snapshot keeps integ-runner's layout
 * (templates, manifests, integ.json; no asset folders since the test disables the update workflow).
 *
 * After an intended change, update the snapshot with:
 *   node scripts/bundle-handler.js && UPDATE_INTEG_SNAPSHOT=1 npx jest test/unikernel-ami/integ-hello-snapshot.test.ts
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const INTEG_APP = path.join('test', 'integ.hello.ts');
const SNAPSHOT = path.join(ROOT, 'test', 'integ.hello.ts.snapshot');
/** The feature flags integ-runner synthesizes integ tests with. */
const INTEG_RUNNER_FLAGS = path.join(ROOT, 'node_modules', '@aws-cdk', 'integ-runner', 'lib', 'recommended-feature-flags.json');
/** integ-runner leaves target partitions unset (its getContext), so service principals stay literal. */
const TARGET_PARTITIONS = '@aws-cdk/core:target-partitions';

function synthesizeIntegApp(outdir: string): void {
  const context = JSON.parse(fs.readFileSync(INTEG_RUNNER_FLAGS, 'utf8'));
  delete context[TARGET_PARTITIONS];
  // As the CDK CLI does without --debug: no construction stack traces (absolute paths) in the metadata.
  context['aws:cdk:disable-stack-trace'] = true;
  context['aws:cdk:disable-creation-stack-traces'] = true;
  execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', INTEG_APP], {
    cwd: ROOT,
    env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify(context), CDK_INTEG_REGION: 'test-region', CDK_INTEG_ACCOUNT: '12345678' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * A template without what changes on every synth: integ-tests-alpha salts each assertion with the time
 * so that it runs on every deploy, and integ-runner's own comparison ignores that salt too.
 */
function readTemplate(file: string): { Resources: { [id: string]: { Type: string; Properties?: { salt?: string } } } } {
  const template = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const resource of Object.values(template.Resources) as Array<{ Type: string; Properties?: { salt?: string } }>) {
    if (resource.Type.startsWith('Custom::DeployAssert@') && resource.Properties) {
      delete resource.Properties.salt;
    }
  }
  return template;
}

function templates(directory: string): string[] {
  return fs.readdirSync(directory).filter((file) => file.endsWith('.template.json')).sort();
}

/**
 * What integ-runner's snapshot cleanup removes (asset folders and files, the asset cache), and the
 * stack traces some metadata keeps even with traces disabled, which hold this machine's paths.
 */
function cleanSnapshot(directory: string): void {
  for (const file of fs.readdirSync(directory)) {
    const filePath = path.join(directory, file);
    if (file.startsWith('asset.') || file === '.cache') {
      fs.rmSync(filePath, { recursive: true, force: true });
    } else if (file.endsWith('.metadata.json')) {
      const metadata: { [constructPath: string]: Array<{ trace?: string[] }> } = JSON.parse(fs.readFileSync(filePath, 'utf8'));
      Object.values(metadata).flat().forEach((entry) => delete entry.trace);
      fs.writeFileSync(filePath, `${JSON.stringify(metadata, undefined, 2)}\n`);
    }
  }
}

describe('integ.hello snapshot', () => {
  let actual: string;
  beforeAll(() => {
    actual = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-integ-hello-'));
    synthesizeIntegApp(actual);
    if (process.env.UPDATE_INTEG_SNAPSHOT === '1') {
      cleanSnapshot(actual);
      fs.rmSync(SNAPSHOT, { recursive: true, force: true });
      fs.cpSync(actual, SNAPSHOT, { recursive: true });
      fs.chmodSync(SNAPSHOT, 0o755);
    }
  });
  afterAll(() => fs.rmSync(actual, { recursive: true, force: true }));

  test('has the same stacks as the app', () => {
    expect(templates(actual)).toEqual(templates(SNAPSHOT));
    expect(templates(actual)).toEqual(expect.arrayContaining(['MirageUnikernelAmiIntegHello.template.json']));
  });

  test('every template is unchanged (rerun with UPDATE_INTEG_SNAPSHOT=1 after an intended change)', () => {
    for (const file of templates(SNAPSHOT)) {
      const expected = readTemplate(path.join(SNAPSHOT, file));
      const synthesized = readTemplate(path.join(actual, file));
      expect({ file, template: synthesized }).toEqual({ file, template: expected });
    }
  });

  test('the snapshot names the integ test case and leaves the assets out', () => {
    const integManifest = JSON.parse(fs.readFileSync(path.join(SNAPSHOT, 'integ.json'), 'utf8'));
    expect(Object.values(integManifest.testCases)).toEqual([expect.objectContaining({ stacks: ['MirageUnikernelAmiIntegHello'], regions: ['us-east-1'], stackUpdateWorkflow: false })]);
    expect(fs.readdirSync(SNAPSHOT).filter((file) => file.startsWith('asset.'))).toEqual([]);
  });
});
