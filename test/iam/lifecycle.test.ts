/**
 * The IAM proof of the handler's and the helper's requests: every request recorded in the
 * lifecycles of both strategies (create, rebuild, tag-only update, delete, retain, a build failing
 * part-way and its cleanup, a stack switched from helper to EBS direct builds), the helper
 * instance's own requests included, must be allowed by the policies of the synthesized template,
 * judged by the IAM simulator against AWS's authorization data (see probes.test.ts for the
 * requests that must be denied).
 *
 * The custom resource's properties are the template's own, resolved for the deployment, so the
 * handler builds exactly what the template lets it build.
 *
 * The lifecycles run on a stand-in driver (lifecycle-driver.ts) until the reliability work's strict
 * fake and driver reach main; only the imports here change then.
 */
import { readFileSync } from 'fs';
import { isBuildId } from '../../lib/unikernel-ami/handler/build-id';
import { PV_X86_64_KERNEL } from '../fixtures/construct';
import { denials, RequestJudge, RequestJudgement } from './judge-requests';
import { CfnOutcome, Lifecycle, LIFECYCLES, ProofRecordedRequest, RecordingAws, runLifecycle, runStrategySwitch } from './lifecycle-driver';
import { Proof, PROOF_UNIKERNELS, ProofUnikernel, synthesizeProofStack, synthesizeSwitchedStack } from './proof-stack';

const KERNEL = readFileSync(PV_X86_64_KERNEL);

/**
 * Requests AWS refuses by design, and what makes that harmless: the SSM agent polls for State
 * Manager associations, which the helper's role does not allow (Run Command needs none); the agent
 * logs the refusal and goes on taking commands.
 */
const DENIED_BY_DESIGN = ['helper ssm:ListInstanceAssociations'];

const aws = new RecordingAws();
let logSpy: jest.SpyInstance;
const proofs: { [variant: string]: Proof } = {};
const figures = { requests: 0, authorizations: 0, deniedByDesign: 0, actions: new Set<string>() };

beforeAll(() => {
  proofs.synthesized = synthesizeProofStack({ minimizePolicies: false });
  proofs.minimized = synthesizeProofStack({ minimizePolicies: true });
});

beforeEach(() => {
  aws.reset();
  logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
});

afterEach(() => {
  logSpy.mockRestore();
});

afterAll(() => {
  // The figures the README's security section quotes.
  console.log(`IAM proof: ${figures.requests} recorded requests (${figures.actions.size} distinct actions) allowed as ${figures.authorizations} ` +
    `authorizations against the template as synthesized and minimized; ${figures.deniedByDesign} denied by design (${DENIED_BY_DESIGN.join(', ')})`);
});

/** Judges every recorded request against both policy variants; returns the denials. */
async function judgeAll(requests: readonly ProofRecordedRequest[]): Promise<string[]> {
  const problems: string[] = [];
  for (const [variant, proof] of Object.entries(proofs)) {
    const judge = new RequestJudge(proof);
    for (const request of requests) {
      const judgement: RequestJudgement = await judge.handlerRequest(request);
      const label = judgement.request;
      if (DENIED_BY_DESIGN.includes(label)) {
        expect(judgement.allowed).toBe(false);
        figures.deniedByDesign += variant === 'synthesized' ? 1 : 0;
        continue;
      }
      if (!judgement.allowed) {
        problems.push(`${variant}, ${request.phase ?? ''}, ${label}: ${denials(judgement).join('; ')}`);
      }
      if (variant === 'synthesized') {
        figures.requests++;
        figures.authorizations += judgement.judgements.length;
        figures.actions.add(label);
      }
    }
  }
  return problems;
}

function putKernels(proof: Proof): void {
  for (const id of PROOF_UNIKERNELS) {
    const properties = proof.properties[id];
    aws.putObject(properties.KernelBucket, properties.KernelKey, KERNEL, properties.KernelObjectVersion);
  }
}

function expectOutcomes(outcomes: CfnOutcome[], lifecycle: Lifecycle): void {
  if (lifecycle === 'failed-create') {
    expect(outcomes[0].status).toBe('FAILED');
    expect(outcomes.slice(1).map((o) => o.status)).toEqual(['SUCCESS']);
  } else {
    expect(outcomes.map((o) => `${o.requestType} ${o.status} ${o.failureReason ?? ''}`.trim())).toEqual(outcomes.map((o) => `${o.requestType} SUCCESS`));
  }
}

describe.each(PROOF_UNIKERNELS)('%s', (unikernel: ProofUnikernel) => {
  test.each(LIFECYCLES)('%s: every request is allowed', async (lifecycle) => {
    const proof = proofs.synthesized;
    putKernels(proof);
    const outcomes = await runLifecycle(aws, { lifecycle, properties: proof.properties[unikernel], stackId: proof.resolver.stackId });
    expectOutcomes(outcomes, lifecycle);
    expect(aws.requests.length).toBeGreaterThan(0);
    expect(await judgeAll(aws.requests)).toEqual([]);
  });
});

test('a helper build whose SSM agent takes commands through ec2messages: every request is allowed', async () => {
  const proof = proofs.synthesized;
  putKernels(proof);
  const outcomes = await runLifecycle(aws, { lifecycle: 'delete', properties: proof.properties.HelperEncrypted, stackId: proof.resolver.stackId, agentChannel: 'ec2messages' });
  expectOutcomes(outcomes, 'delete');
  expect(aws.requests.some((r) => r.service === 'ec2messages')).toBe(true);
  expect(await judgeAll(aws.requests)).toEqual([]);
});

test('the helper instance\'s own requests are part of the proof', async () => {
  const proof = proofs.synthesized;
  putKernels(proof);
  await runLifecycle(aws, { lifecycle: 'create', properties: proof.properties.HelperEncrypted, stackId: proof.resolver.stackId });
  const helper = aws.requests.filter((r) => r.principal === 'helper-instance').map((r) => `${r.service}:${r.action}`);
  expect(new Set(helper)).toEqual(new Set(['ssm:UpdateInstanceInformation', 'ssmmessages:CreateControlChannel', 'ssmmessages:OpenControlChannel',
    'ssm:ListInstanceAssociations', 's3:HeadObject', 's3:GetObject']));
});

test('a stack switched from helper to EBS direct builds can still delete its old helper build, with the direct-only role', async () => {
  // The old build is made under the helper template; its cleanup Delete runs under the new, direct-only one.
  const before = proofs.synthesized;
  const after = synthesizeSwitchedStack();
  putKernels(before);
  const helper = before.properties.HelperEncrypted;
  const { outcomes, cleanupFrom } = await runStrategySwitch(aws, before.resolver.stackId, { ...helper, KmsKeyArn: undefined, Encrypted: 'false' }, after.properties);
  expect(outcomes.map((o) => o.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
  expect(isBuildId(outcomes[2].physicalResourceId)).toBe(true);
  const cleanup = aws.requests.slice(cleanupFrom);
  expect(cleanup.map((r) => `${r.service}:${r.action}`)).toEqual(expect.arrayContaining(['ec2:DeregisterImage', 'ec2:DeleteSnapshot']));
  const judge = new RequestJudge(after);
  const denied = [];
  for (const request of cleanup) {
    const judgement = await judge.handlerRequest(request);
    if (!judgement.allowed) {
      denied.push(`${judgement.request}: ${denials(judgement).join('; ')}`);
    }
  }
  expect(denied).toEqual([]);
});
