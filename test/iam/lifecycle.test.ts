/**
 * The IAM proof of the handler's and the helper's requests: every request recorded by the strict
 * fake AWS (test/fixtures/fake-aws) while the lifecycle driver (test/fixtures/lifecycle.ts) plays
 * CloudFormation's requests must be allowed by the policies of the synthesized template, judged by
 * the IAM simulator against AWS's authorization data: the handler's requests by the handler role,
 * the helper instance's own (its SSM agent, its script's reads) by the helper role. See
 * probes.test.ts for the requests that must be denied.
 *
 * The custom resources' properties are the template's own, resolved for the deployment, and the fake
 * account holds the template's subnets, instance profile, buckets and image (proof-account.ts), so
 * the handler builds exactly what the template lets it build, with the ids the policies name.
 *
 * Runs: each unikernel of the proof stack (two helper builds, one with a customer managed key; two
 * EBS-direct builds, one with that key, one from a versioned kernel in a user's bucket) in every
 * lifecycle of the driver; a kernel whose staged image is a multipart upload; a stack switched from
 * helper to EBS direct builds; runs with faults, throttling and lags, in which the handler repeats
 * calls or cleans up after a failure; and issue 17's lifecycles (naming, sharing, deprecation,
 * protection: DISTRIBUTION_LIFECYCLES) for an EBS-direct and a helper unikernel.
 */
import { BUILD_ID_TAG, STACK_ID_TAG, UnikernelAmiProperties } from '../../lib/unikernel-ami/types';
import { onEvent } from '../../lib/unikernel-ami/handler/index';
import { createEvent, deleteEvent, DISTRIBUTION_PROPERTIES, STACK_ID, updateEvent } from '../fixtures/custom-resource';
import { seededRandom, useFakeAws } from '../fixtures/fake-aws';
import { RecordedRequest } from '../fixtures/recorded-request';
import {
  CfnOutcome, completeRequest, DEFAULT_KERNEL, DISTRIBUTION_LIFECYCLES, DistributionLifecycle, findLeaks, Lifecycle, LIFECYCLES, LifecycleOptions, lifecycleProperties, LifecycleResult, runLifecycle, Strategy,
} from '../fixtures/lifecycle';
import { denials, labelOf, RequestJudge } from './judge-requests';
import { Authorization } from './request-authorizations';
import { addTemplateResources, objectsLeft, putKernel } from './proof-account';
import { Proof, PROOF_UNIKERNELS, ProofUnikernel, ResolvedStack, synthesizeProofStack, synthesizeSwitchedStack } from './proof-stack';

/**
 * Requests denied on purpose, each with what makes that harmless. The SSM agent polls for State
 * Manager associations (ssm:ListInstanceAssociations) when it registers; the helper role does not
 * allow it, since Run Command needs no association: the agent logs the refusal and goes on taking
 * commands. Any other denial fails the proof, and so does this one being allowed.
 */
const DENIED_BY_DESIGN: readonly string[] = ['helper ssm:ListInstanceAssociations'];

const { aws } = useFakeAws();
const proofs: { synthesized?: Proof; minimized?: Proof } = {};
const figures = { runs: 0, requests: 0, authorizations: 0, deniedByDesign: 0, labels: new Set<string>(), grantsUsed: new Set<string>(), grantsGranted: 0 };

beforeAll(() => {
  proofs.synthesized = synthesizeProofStack({ minimizePolicies: false });
  proofs.minimized = synthesizeProofStack({ minimizePolicies: true });
});

beforeEach(() => {
  // After useFakeAws's reset: the account also holds what the proof stack's template creates.
  addTemplateResources(aws, proofs.synthesized!);
});

afterAll(() => {
  // The figures docs/security.md quotes.
  console.log(`IAM proof: ${figures.runs} lifecycles, ${figures.requests} recorded requests (${figures.labels.size} distinct) allowed as ` +
    `${figures.authorizations} authorizations against the template as synthesized and as minimized; ${figures.deniedByDesign} denied by design ` +
    `(${DENIED_BY_DESIGN.join(', ')})`);
  if (figures.grantsGranted > 0) {
    const unexercised = Object.keys(GRANTED_UNEXERCISED).length;
    console.log(`IAM proof: ${figures.grantsGranted - unexercised} of the ${figures.grantsGranted} actions the proof stack's handler and helper roles grant ` +
      `were needed by recorded requests; the other ${unexercised} are granted for the reasons GRANTED_UNEXERCISED gives`);
  }
});

/**
 * Judges requests against the policies of a stack's template, as synthesized and, for the proof
 * stack, as minimized; returns every denial but those DENIED_BY_DESIGN (which must be denied).
 */
async function judge(requests: readonly RecordedRequest[], stacks: readonly ResolvedStack[]): Promise<string[]> {
  expect(requests.length).toBeGreaterThan(0);
  const problems: string[] = [];
  for (const [variant, stack] of stacks.entries()) {
    const judgeOf = new RequestJudge(stack);
    for (const request of requests) {
      const judgement = await judgeOf.request(request);
      const label = labelOf(request);
      if (DENIED_BY_DESIGN.includes(label)) {
        if (judgement.allowed) {
          problems.push(`${label} is allowed, but the proof says it is denied by design: update DENIED_BY_DESIGN and docs/security.md`);
        }
        figures.deniedByDesign += variant === 0 ? 1 : 0;
        continue;
      }
      if (!judgement.allowed) {
        problems.push(`${variant === 0 ? 'as synthesized' : 'minimized'}, ${request.phase ?? request.instanceId}, ${label}: ${denials(judgement).join('; ')}`);
      }
      if (variant === 0) {
        figures.requests++;
        figures.authorizations += judgement.judgements.length;
        figures.labels.add(label);
        judgement.judgements.forEach((j) => figures.grantsUsed.add(`${(j.check as Authorization).caller === 'helper' ? 'helper ' : ''}${j.check.action}`));
      }
    }
  }
  return problems;
}

function proofStacks(): ResolvedStack[] {
  return [proofs.synthesized!, proofs.minimized!];
}

function strategyOf(properties: UnikernelAmiProperties): Strategy {
  return properties.Strategy === 'ebs-direct' ? 'ebs-direct' : 'helper-instance';
}

/**
 * The driver's overrides that make its Create's properties exactly `template`'s: every property of
 * the driver's own that the template lacks removed, but the removal policy, which the driver sets
 * for the `retain` lifecycle.
 */
function templateProperties(template: UnikernelAmiProperties): Partial<UnikernelAmiProperties> {
  const strategy = strategyOf(template);
  const keys = new Set([...Object.keys(lifecycleProperties({ strategy, lifecycle: 'create' })), ...Object.keys(template)]);
  keys.delete('RemovalPolicy');
  return Object.fromEntries([...keys].map((key) => [key, template[key as keyof UnikernelAmiProperties]]));
}

/** Plays a lifecycle of a proof-stack unikernel with its template properties and its logical id. */
async function play(unikernel: ProofUnikernel, options: Omit<LifecycleOptions, 'strategy' | 'properties' | 'logicalId'>, more: Partial<UnikernelAmiProperties> = {}): Promise<LifecycleResult> {
  const template = proofs.synthesized!.properties[unikernel];
  const kernel = options.kernel ?? DEFAULT_KERNEL;
  putKernel(aws, template, kernel);
  figures.runs++;
  return runLifecycle(aws, { strategy: strategyOf(template), logicalId: proofs.synthesized!.logicalIds[unikernel], ...options, properties: { ...templateProperties(template), ...more }, kernel });
}

/** The lifecycle ended as it should: every request SUCCESS (but a failed Create), nothing left of any build, staged object or upload. */
function expectClean(result: LifecycleResult, expected: readonly string[], stack: ResolvedStack = proofs.synthesized!): void {
  // An unexpected failure shows its reason.
  const summary = (o: CfnOutcome, n: number) => (o.status === 'FAILED' && expected[n] !== `${o.reason} FAILED` ? `${o.reason} FAILED: ${o.failureReason}` : `${o.reason} ${o.status}`);
  expect(result.outcomes.map(summary)).toEqual(expected);
  expect(result.leaks).toEqual([]);
  expect(objectsLeft(aws, stack)).toEqual([]);
  expect([...aws.world.uploads.keys()]).toEqual([]);
}

const EXPECTED_OUTCOMES: Record<Lifecycle, string[]> = {
  'create': ['create SUCCESS'],
  'rebuild': ['create SUCCESS', 'update SUCCESS', 'cleanup-delete SUCCESS'],
  'tag-update': ['create SUCCESS', 'update SUCCESS'],
  'rollback': ['create SUCCESS', 'update SUCCESS', 'rollback-update SUCCESS', 'rollback-delete SUCCESS'],
  'delete': ['create SUCCESS', 'stack-delete SUCCESS'],
  'retain': ['create SUCCESS', 'stack-delete SUCCESS'],
  'failed-create': ['create FAILED', 'rollback-delete SUCCESS'],
  'distribution-update': ['create SUCCESS', 'update SUCCESS'],
  'rename': ['create SUCCESS', 'update SUCCESS', 'cleanup-delete SUCCESS'],
  'rename-rollback': ['create SUCCESS', 'update SUCCESS', 'rollback-update SUCCESS', 'rollback-delete SUCCESS'],
  'protected-delete': ['create SUCCESS', 'stack-delete SUCCESS'],
  'protected-retain': ['create SUCCESS', 'stack-delete SUCCESS'],
};

function actions(requests: readonly RecordedRequest[]): Set<string> {
  return new Set(requests.map(labelOf));
}

/** Tests that play lifecycles and judge their requests: counted, so that the check of the grants knows they all ran. */
const planned = { runs: 0 };
const completed = { runs: 0 };
function proofTest(name: string, body: () => Promise<void>): void {
  planned.runs++;
  test(name, async () => {
    await body();
    completed.runs++;
  });
}

for (const unikernel of PROOF_UNIKERNELS) {
  describe(unikernel, () => {
    for (const lifecycle of LIFECYCLES) {
      proofTest(`${lifecycle}: every request is allowed`, async () => {
        // The encrypted unikernels' tag-only update drops a tag (DeleteTags); the others' adds one.
        const dropsTag = lifecycle === 'tag-update' && unikernel.endsWith('Encrypted');
        const result = await play(unikernel, { lifecycle, updateProperties: dropsTag ? { Tags: { owner: 'team-b' } } : undefined });
        expectClean(result, EXPECTED_OUTCOMES[lifecycle]);
        if (dropsTag) {
          expect(actions(aws.requests)).toContain('ec2:DeleteTags');
        }
        expect(await judge(aws.requests, proofStacks())).toEqual([]);
      });
    }
  });
}

describe('encryption with a customer managed key', () => {
  proofTest('helper: RunInstances encrypts the data volume with the key, through EC2', async () => {
    const result = await play('HelperEncrypted', { lifecycle: 'create' });
    expectClean(result, EXPECTED_OUTCOMES.create);
    const launch = aws.requests.find((r) => r.action === 'RunInstances')!;
    const checks = new RequestJudge(proofs.synthesized!).authorizations.of(launch).map((c) => c.action);
    expect(checks).toEqual(expect.arrayContaining(['kms:CreateGrant', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey', 'kms:Decrypt']));
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });

  proofTest('EBS direct: StartSnapshot encrypts with the key', async () => {
    const result = await play('DirectEncrypted', { lifecycle: 'create' });
    expectClean(result, EXPECTED_OUTCOMES.create);
    const start = aws.requests.find((r) => r.action === 'StartSnapshot')!;
    expect(start.input).toMatchObject({ Encrypted: true, KmsKeyArn: proofs.synthesized!.properties.DirectEncrypted.KmsKeyArn });
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });
});

describe('EBS encryption by default', () => {
  proofTest('the check of the default key (GetEbsEncryptionByDefault, GetEbsDefaultKmsKeyId, kms:DescribeKey) is allowed', async () => {
    // GIVEN an account that encrypts by default with the AWS managed key, named by its key ARN (so the handler describes it)
    aws.world.encryption.encryptionByDefault = true;
    aws.world.encryption.defaultKmsKeyId = aws.world.encryption.keys[0].arn;
    const result = await play('HelperT1', { lifecycle: 'create' });
    expectClean(result, EXPECTED_OUTCOMES.create);
    expect([...actions(aws.requests)].filter((label) => /GetEbs|kms:DescribeKey/.test(label)).sort())
      .toEqual(['ec2:GetEbsDefaultKmsKeyId', 'ec2:GetEbsEncryptionByDefault', 'kms:DescribeKey']);
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });
});

describe('issue 17: naming, sharing, deprecation and protection', () => {
  // Every distribution lifecycle, on an EBS-direct build with a customer managed key (its AMI may be
  // shared) and on a helper build.
  for (const unikernel of ['DirectEncrypted', 'HelperT1'] as const) {
    for (const lifecycle of Object.keys(DISTRIBUTION_LIFECYCLES) as DistributionLifecycle[]) {
      proofTest(`${unikernel}, ${lifecycle}: every request is allowed`, async () => {
        const result = await play(unikernel, { lifecycle });
        expectClean(result, EXPECTED_OUTCOMES[lifecycle]);
        expect(await judge(aws.requests, proofStacks())).toEqual([]);
      });
    }
  }

  proofTest('public sharing where the account allows it, the deprecation removed: GetImageBlockPublicAccessState, DisableImageDeprecation', async () => {
    aws.world.imageBlockPublicAccess = 'unblocked';
    const result = await play('DirectEncrypted', {
      lifecycle: 'distribution-update',
      updateProperties: { Sharing: { Public: 'true' }, DeprecateAfterSeconds: undefined },
    }, { ...DISTRIBUTION_PROPERTIES, Sharing: { Accounts: ['111122223333'] } });
    expectClean(result, EXPECTED_OUTCOMES['distribution-update']);
    expect([...actions(aws.requests)]).toEqual(expect.arrayContaining(['ec2:GetImageBlockPublicAccessState', 'ec2:DisableImageDeprecation', 'ec2:ModifyImageAttribute']));
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });
});

/** The example kernel padded with random bytes (seeded: the same every run), so that its staged gzip outgrows one 8 MiB part. */
function largeKernel(): Buffer {
  const random = seededRandom(7);
  const padding = Buffer.alloc(9 * 2 ** 20);
  for (let i = 0; i < padding.length; i += 4) {
    padding.writeUInt32LE(Math.floor(random() * 2 ** 32), i);
  }
  return Buffer.concat([DEFAULT_KERNEL, padding]);
}

describe('a kernel whose staged image is a multipart upload', () => {
  const multipart = ['s3:CreateMultipartUpload', 's3:UploadPart', 's3:CompleteMultipartUpload'];

  proofTest('staged in 8 MiB parts, read by the helper, removed: every request is allowed', async () => {
    const result = await play('HelperEncrypted', { lifecycle: 'delete', kernel: largeKernel() });
    expectClean(result, EXPECTED_OUTCOMES.delete);
    expect([...actions(aws.requests)]).toEqual(expect.arrayContaining(multipart));
    expect(aws.requests.filter((r) => r.action === 'UploadPart')).toHaveLength(2);
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });

  proofTest('a part S3 refuses for good: the upload is aborted, the build removed, every request is allowed', async () => {
    aws.injectFault({ kind: 'refuse', service: 's3', action: 'UploadPart', maxHits: Infinity, error: () => Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }) });
    const result = await play('HelperT1', { lifecycle: 'create', kernel: largeKernel() });
    expectClean(result, ['create FAILED', 'rollback-delete SUCCESS']);
    expect(actions(aws.requests)).toContain('s3:AbortMultipartUpload');
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });
});

describe('faults, throttling and lags: the requests the handler repeats are allowed too', () => {
  for (const [unikernel, lifecycle] of [['HelperEncrypted', 'rebuild'], ['DirectFromBucket', 'rollback']] as const) {
    proofTest(`${unikernel}, ${lifecycle}, with a third of all handler requests throttled`, async () => {
      aws.injectRandomFaults('throttle', 1 / 3, 11);
      const result = await play(unikernel, { lifecycle });
      expectClean(result, EXPECTED_OUTCOMES[lifecycle]);
      expect(aws.faultsInjected).toBeGreaterThan(10);
      expect(await judge(aws.requests, proofStacks())).toEqual([]);
    });
  }

  proofTest('HelperT1, delete, with EC2 and SSM lagging a minute and Describe calls showing states of 15 s ago', async () => {
    aws.configure({ lagByIdMs: 60_000, lagByFilterMs: 120_000, staleStateMs: 15_000, ssmLagMs: 30_000 });
    const result = await play('HelperT1', { lifecycle: 'delete' });
    expectClean(result, EXPECTED_OUTCOMES.delete);
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });

  proofTest('HelperEncrypted, create, while the new instance profile reaches EC2 only after a minute: RunInstances repeated', async () => {
    const profile = proofs.synthesized!.properties.HelperEncrypted.Helper!.InstanceProfileArn;
    aws.world.instanceProfiles.set(profile, aws.clock.now() + 60_000);
    const result = await play('HelperEncrypted', { lifecycle: 'create' });
    expectClean(result, EXPECTED_OUTCOMES.create);
    expect(aws.requests.filter((r) => r.action === 'RunInstances').length).toBeGreaterThan(1);
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });

  proofTest('HelperT1, create, while IAM does not see the new helper\'s tags for ten seconds: SendCommand repeated', async () => {
    aws.injectFault({ kind: 'access-denied', service: 'ssm', action: 'SendCommand', maxHits: Infinity, windowMs: 10_000 });
    const result = await play('HelperT1', { lifecycle: 'create' });
    expectClean(result, EXPECTED_OUTCOMES.create);
    expect(aws.requests.filter((r) => r.action === 'SendCommand').length).toBeGreaterThan(1);
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });

  proofTest('HelperEncrypted, create, the helper script failing: the build terminates its helper, the Delete that follows finds nothing left', async () => {
    aws.injectFault({ kind: 'error-state', service: 'ssm', action: 'SendCommand' });
    const result = await play('HelperEncrypted', { lifecycle: 'create' });
    expectClean(result, ['create FAILED', 'rollback-delete SUCCESS']);
    expect(actions(aws.requests)).toContain('ec2:TerminateInstances');
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });

  proofTest('DirectEncrypted, create, the snapshot failing: the build deletes it', async () => {
    aws.injectFault({ kind: 'error-state', service: 'ec2', action: 'DescribeSnapshots', phase: 'Create/isComplete' });
    const result = await play('DirectEncrypted', { lifecycle: 'create' });
    expectClean(result, ['create FAILED', 'rollback-delete SUCCESS']);
    expect(actions(aws.requests)).toContain('ec2:DeleteSnapshot');
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });

  proofTest('a helper whose SSM agent takes commands through ec2messages', async () => {
    aws.configure({ agentChannel: 'ec2messages' });
    const result = await play('HelperT1', { lifecycle: 'delete' });
    expectClean(result, EXPECTED_OUTCOMES.delete);
    expect([...actions(aws.requests)].filter((label) => label.startsWith('helper ec2messages:'))).not.toEqual([]);
    expect(await judge(aws.requests, proofStacks())).toEqual([]);
  });
});

describe('builds of a release before the stack-id tag (tagged with the stack\'s name only)', () => {
  /** What that release left: the stack-id tag removed from everything the build made. */
  function asBeforeStackId(buildId: string): string[] {
    const resources = [...aws.world.images.values(), ...aws.world.snapshots.values(), ...aws.world.instances.values(), ...aws.world.volumes.values()]
      .filter((r) => r.tags.some((tag) => tag.Key === BUILD_ID_TAG && tag.Value === buildId));
    for (const resource of resources) {
      resource.tags = resource.tags.filter((tag) => tag.Key !== STACK_ID_TAG);
    }
    return resources.map((r) => r.id);
  }

  for (const unikernel of ['HelperT1', 'DirectFromBucket'] as const) {
    proofTest(`${unikernel}: the next Update adds this stack's id and updates the build, the Delete removes it; a retained AMI of that release stays untouched; every request is allowed`, async () => {
      const template = proofs.synthesized!.properties[unikernel];
      const logicalId = proofs.synthesized!.logicalIds[unikernel];
      putKernel(aws, template, DEFAULT_KERNEL);
      figures.runs++;
      // GIVEN a retained AMI of another resource of that release, and a build of this resource made by it
      const retained = await runLifecycle(aws, { strategy: strategyOf(template), lifecycle: 'retain', logicalId: `${logicalId}Retained`, properties: templateProperties(template) });
      const [retainedBuild] = retained.keptBuildIds;
      const retainedIds = asBeforeStackId(retainedBuild);
      const retainedTags = retainedIds.map((id) => aws.tagsOf(id));
      const props = lifecycleProperties({ strategy: strategyOf(template), lifecycle: 'create', properties: templateProperties(template) });
      const { response } = await completeRequest(aws, { ...createEvent(props), LogicalResourceId: logicalId });
      const buildId = response.PhysicalResourceId;
      const migrated = asBeforeStackId(buildId);
      expect(migrated.length).toBeGreaterThanOrEqual(2);
      const requestsBefore = aws.requests.length;
      // WHEN a tag-only Update, then the stack's Delete
      const updated = { ...props, Tags: { ...props.Tags, owner: 'ops' } };
      await completeRequest(aws, { ...updateEvent(buildId, updated, props), LogicalResourceId: logicalId });
      // THEN the build's AMI and snapshot carry this stack's id and the new tag (its helper is long terminated)
      const kept = migrated.filter((id) => /^(ami|snap)-/.test(id));
      expect(kept).toHaveLength(2);
      for (const id of kept) {
        expect(aws.tagsOf(id)).toMatchObject({ [STACK_ID_TAG]: STACK_ID, owner: 'ops' });
      }
      await completeRequest(aws, { ...deleteEvent(buildId, updated), LogicalResourceId: logicalId });
      await aws.advance(2 * 3600_000);
      // the Delete removed it, and the retained AMI of that release is as it was, named by no request
      expect(findLeaks(aws, [retainedBuild])).toEqual([]);
      expect(retainedIds.map((id) => aws.tagsOf(id))).toEqual(retainedTags);
      expect(aws.requests.slice(requestsBefore).filter((r) => retainedIds.some((id) => JSON.stringify(r.input).includes(id)))).toEqual([]);
      expect(aws.requests.filter((r) => r.action === 'CreateTags' && (r.input.Tags as { Key: string }[]).some((t) => t.Key === STACK_ID_TAG) && (r.input.Tags as unknown[]).length === 1)).not.toEqual([]);
      expect(await judge(aws.requests, proofStacks())).toEqual([]);
    });
  }
});

proofTest('the helper instance\'s own requests are part of the proof', async () => {
  await play('HelperEncrypted', { lifecycle: 'create' });
  const helper = aws.requests.filter((r) => r.principal === 'helper-instance').map(labelOf);
  expect(new Set(helper)).toEqual(new Set(['helper ssm:UpdateInstanceInformation', 'helper ssmmessages:CreateControlChannel',
    'helper ssmmessages:OpenControlChannel', 'helper ssm:ListInstanceAssociations']));
  // Its script's downloads use URLs the handler presigned for exactly its build's two objects, authorized as the handler role.
  const buildId = String(aws.handlerRequests('SendCommand')[0].input.Comment);
  expect(aws.requests.filter((r) => r.principal === 'presigned-url').map((r) => `${labelOf(r)} ${r.input.Key}`)).toEqual([
    `presigned s3:GetObject builds/${buildId}/blocks.gz`, `presigned s3:GetObject builds/${buildId}/manifest.txt`,
  ]);
  expect(await judge(aws.requests, proofStacks())).toEqual([]);
});

proofTest('a stack switched from helper to EBS direct builds: the new build, and the Delete of the old helper build, under the direct-only role', async () => {
  const before = synthesizeSwitchedStack('helper');
  const after = synthesizeSwitchedStack('direct');
  expect(after.logicalId).toBe(before.logicalId);
  expect(after.helper).toBeUndefined();
  addTemplateResources(aws, before);
  putKernel(aws, before.properties, DEFAULT_KERNEL);
  // The Update carries the direct template's properties: no staging bucket, no helper settings.
  const directProperties = { ...templateProperties(after.properties), StagingBucket: undefined, Helper: undefined };
  figures.runs++;
  const result = await runLifecycle(aws, {
    strategy: 'helper-instance', lifecycle: 'rebuild', logicalId: before.logicalId, properties: templateProperties(before.properties), updateProperties: directProperties,
  });
  expectClean(result, EXPECTED_OUTCOMES.rebuild, before);
  // CloudFormation updates the handler role before the custom resource: from the Update on, the direct-only role.
  const switchedAt = aws.requests.findIndex((r) => r.phase?.startsWith('Update/'));
  const created = aws.requests.slice(0, switchedAt);
  const switched = aws.requests.slice(switchedAt);
  expect(switched.filter((r) => r.principal === 'helper-instance')).toEqual([]);
  expect([...actions(switched.filter((r) => r.phase?.startsWith('Delete/')))]).toEqual(expect.arrayContaining(['ec2:DeregisterImage', 'ec2:DeleteSnapshot']));
  expect(actions(switched)).toContain('ebs:StartSnapshot');
  expect(await judge(created, [before])).toEqual([]);
  expect(await judge(switched, [after])).toEqual([]);
});

proofTest('EBS direct: a repeated Create onEvent checks the completed snapshot\'s blocks (ListSnapshotBlocks, GetSnapshotBlock) before using it', async () => {
  const result = await play('DirectEncrypted', { lifecycle: 'create' });
  expectClean(result, EXPECTED_OUTCOMES.create);
  // The same Create as the driver sent it, delivered again.
  const logicalId = proofs.synthesized!.logicalIds.DirectEncrypted;
  const properties = lifecycleProperties({ strategy: 'ebs-direct', lifecycle: 'create', properties: templateProperties(proofs.synthesized!.properties.DirectEncrypted) });
  const request = JSON.parse(JSON.stringify({ ...createEvent(properties, `create-${logicalId}`), LogicalResourceId: logicalId }));
  const before = aws.requests.length;
  const again = await aws.drive(onEvent(request));
  expect(again.PhysicalResourceId).toBe(result.outcomes[0].physicalResourceId);
  expect([...actions(aws.requests.slice(before))]).toEqual(expect.arrayContaining(['ebs:ListSnapshotBlocks', 'ebs:GetSnapshotBlock']));
  expect(await judge(aws.requests, proofStacks())).toEqual([]);
});

/**
 * What the roles grant that no recorded request needs, each with why it is granted all the same.
 * Any other unexercised grant fails the test below: it is either dead (remove it) or needed by a
 * request the lifecycles do not make (make them, or say why here).
 */
const GRANTED_UNEXERCISED: { readonly [action: string]: string } = {
  'logs:CreateLogStream': 'the Lambda runtime writes the handler\'s logs, not the handler\'s AWS clients',
  'logs:PutLogEvents': 'the Lambda runtime writes the handler\'s logs, not the handler\'s AWS clients',
  'kms:ReEncryptFrom': 'in AWS\'s documented EBS-encryption and EBS direct key permissions; no build re-encrypts a snapshot',
  'kms:ReEncryptTo': 'in AWS\'s documented EBS-encryption and EBS direct key permissions; no build re-encrypts a snapshot',
  'ec2:DeleteVolume': 'for the detached volumes of builds made by earlier versions of the handler (CreateVolume); this one makes none',
  'helper ec2messages:DeleteMessage': 'the SSM agent\'s ec2messages calls for messages it drops or fails, which the fake agent never does',
  'helper ec2messages:FailMessage': 'the SSM agent\'s ec2messages calls for messages it drops or fails, which the fake agent never does',
};

test('every action the proof stack\'s roles grant is needed by a recorded request, but those GRANTED_UNEXERCISED names', () => {
  if (completed.runs !== planned.runs) {
    throw new Error(`This check needs every lifecycle of the file (${completed.runs} of ${planned.runs} ran): run the whole file.`);
  }
  const proof = proofs.synthesized!;
  const granted = new Set<string>();
  for (const [prefix, role] of [['', proof.handler], ['helper ', proof.helper!]] as const) {
    for (const { policy } of role.policies) {
      policy.Statement.flatMap((statement) => [statement.Action].flat()).forEach((action) => granted.add(`${prefix}${action}`));
    }
  }
  expect([...granted].filter((action) => !figures.grantsUsed.has(action)).sort()).toEqual(Object.keys(GRANTED_UNEXERCISED).sort());
  figures.grantsGranted = granted.size;
});
