/**
 * The fault matrix of issue 11: for a strategy and a lifecycle, a fault is injected at every AWS
 * call the handler makes, one call and one kind of fault at a time. The list of calls is not
 * written here: it is recorded from a clean run of the same lifecycle, so a call the handler starts
 * making cannot escape the matrix. A call is its phase (the CloudFormation request and the handler
 * entry point, e.g. `Update/isComplete`) with its service and action.
 *
 * After each scenario: the CloudFormation outcomes are right (success with real ids whose snapshot
 * holds the image, or a failure a user can act on, within CloudFormation's 4,096 bytes), no
 * invocation outlasted its Lambda timeout, nothing of any build is left but what CloudFormation
 * holds or RETAIN keeps (leaks), no AMI CloudFormation was told about is gone before the Delete of
 * its own physical id (wrongful deletes), and a repeated delivery answered what the first did.
 *
 * Issue 15 adds the faults of repetition and staleness (REPEAT_AND_STALE), a lost response after a
 * create without client token (`lost-response`) and an extra isComplete after the response. They
 * run in a test of their own per lifecycle. A call (phase and action) recurs in several lifecycles,
 * so each of these kinds runs at each distinct call of the strategy once, in one of the lifecycles
 * that make it, chosen by a seeded random source (the same every run): that keeps the matrix's CPU
 * time within the test budget while every call meets every kind. `lost-response` runs at every
 * CreateSnapshot, RegisterImage and SendCommand of every lifecycle, SERVICE_FAULTS at every call of
 * their actions, and each lifecycle once under a Recycle Bin retention rule (`recycle-bin`: what
 * the handler deletes goes to the bin, which the leak check does not count; see the fake's
 * recycleBinRetentionMs for why).
 */
import { DiskLayout } from '../../../lib/disk-image';
import { BUILD_ID_TAG, UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import { awsError, diskImageContent, FakeAws, FaultKind, FaultRule, LOST_RESPONSE_ACTIONS, seededRandom, SSM_STATUS_FAULTS, STATEFUL_ACTIONS } from '../../fixtures/fake-aws';
import { CFN_RESPONSE_LIMIT_BYTES, DEFAULT_KERNEL, Lifecycle, lifecycleProperties, LifecycleResult, RepetitionFault, runLifecycle, Strategy, updatePropertiesOf } from '../../fixtures/lifecycle';

/** How each kind of fault is injected at a call: how many answers it changes, for how long. */
export const FAULTS: Record<FaultKind, Omit<FaultRule, 'service' | 'action' | 'phase' | 'kind'>> = {
  // A burst of throttling or server errors: five answers in a row.
  throttle: { maxHits: 5 },
  internal: { maxHits: 5 },
  // A permission that is missing for five minutes (a policy being fixed, IAM propagating).
  'access-denied': { maxHits: Infinity, windowMs: 5 * 60_000 },
  // New resources unknown to the call for 90 s, far beyond EC2's usual seconds, for three minutes.
  'not-found-lag': { maxHits: Infinity, windowMs: 3 * 60_000 },
  // The resource the call creates or looks at fails (an instance, a snapshot, an AMI, a command).
  'error-state': { maxHits: 1 },
  // The resource never leaves its transitional state, or the call's answer never comes.
  'never-finishes': { maxHits: 1 },
};

/**
 * Faults after which the lifecycle must still succeed: the handler waits them out. So must it a
 * response that never came (never-finishes at a call whose resource has no state to get stuck in).
 */
export const MUST_SUCCEED: ReadonlySet<FaultKind> = new Set(['throttle', 'internal', 'not-found-lag']);

function mustSucceed(scenario: Scenario): boolean {
  const call = scenario.call.split('|')[1];
  return MUST_SUCCEED.has(scenario.fault as FaultKind) || REPETITIONS.has(scenario.fault) || TRANSIENT_SERVICE_FAULTS.has(scenario.fault) || (scenario.fault === 'never-finishes' && !STATEFUL_ACTIONS.has(call));
}

/** Repetitions the provider framework causes (RepetitionFault) and stale reads (the fake's STALE_READS), injected at a call. */
export const REPEAT_AND_STALE = ['repeat-sequential', 'repeat-concurrent', 'stale-state', 'stale-absent'] as const;
export type MatrixFault = FaultKind | typeof REPEAT_AND_STALE[number] | 'extra-isComplete' | 'lost-response' | keyof typeof SERVICE_FAULTS | 'recycle-bin';

/**
 * Answers of particular services, injected at every call of the action they belong to, in every
 * lifecycle (`at`: the `service:action`s, or a service's every action with `service:*`).
 */
export const SERVICE_FAULTS = {
  // SSM command statuses (SSM_STATUS_FAULTS in the fake, with their source): one answer.
  'ssm-delayed': { at: ['ssm:GetCommandInvocation'], rule: { kind: 'ssm-status', ssmStatus: SSM_STATUS_FAULTS['ssm-delayed'], maxHits: 3 } },
  'ssm-cancelled': { at: ['ssm:GetCommandInvocation'], rule: { kind: 'ssm-status', ssmStatus: SSM_STATUS_FAULTS['ssm-cancelled'], maxHits: 1 } },
  'ssm-delivery-timed-out': { at: ['ssm:GetCommandInvocation'], rule: { kind: 'ssm-status', ssmStatus: SSM_STATUS_FAULTS['ssm-delivery-timed-out'], maxHits: 1 } },
  'ssm-undeliverable': { at: ['ssm:GetCommandInvocation'], rule: { kind: 'ssm-status', ssmStatus: SSM_STATUS_FAULTS['ssm-undeliverable'], maxHits: 1 } },
  // EBS direct APIs' errors (EBS direct APIs reference, "Errors"): ConcurrentLimitExceededException
  // (400, "You have reached the limit for concurrent API requests"), ConflictException (409, "the
  // request uses the same client token as a previous, but non-identical request").
  'ebs-concurrent-limit': {
    at: ['ebs:*'],
    rule: { kind: 'refuse', maxHits: 3, error: () => awsError('ConcurrentLimitExceededException', 'You have reached the limit for concurrent API requests.', { status: 400 }) },
  },
  'ebs-conflict': {
    at: ['ebs:*'],
    rule: { kind: 'refuse', maxHits: 1, error: () => awsError('ConflictException', 'The request uses the same client token as a previous, but non-identical request.', { status: 409 }) },
  },
  // RunInstances (EC2 API reference, "Error codes"): InsufficientInstanceCapacity ("We currently do
  // not have sufficient <type> capacity in the Availability Zone you requested"), here for ten
  // minutes; VcpuLimitExceeded (the account's On-Demand vCPU quota), for good.
  'insufficient-capacity': {
    at: ['ec2:RunInstances'],
    rule: {
      kind: 'refuse', maxHits: Infinity, windowMs: 10 * 60_000,
      error: () => awsError('InsufficientInstanceCapacity', 'We currently do not have sufficient t3.small capacity in the Availability Zone you requested (us-east-1b). Our system will be working on provisioning additional capacity.'),
    },
  },
  'vcpu-limit': {
    at: ['ec2:RunInstances'],
    rule: {
      kind: 'refuse', maxHits: Infinity,
      error: () => awsError('VcpuLimitExceeded', 'You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.'),
    },
  },
} satisfies Record<string, { readonly at: readonly string[]; readonly rule: Omit<FaultRule, 'service' | 'action' | 'phase'> }>;

/** Service faults a handler must wait out: it still succeeds. */
const TRANSIENT_SERVICE_FAULTS: ReadonlySet<MatrixFault> = new Set(['ssm-delayed', 'ebs-concurrent-limit']);

/** A repeated invocation must answer what the first one did: the lifecycle still succeeds. */
const REPETITIONS: ReadonlySet<MatrixFault> = new Set(['repeat-sequential', 'repeat-concurrent', 'extra-isComplete']);

export interface Scenario {
  readonly strategy: Strategy;
  readonly lifecycle: Lifecycle;
  /** `phase|service:action` (for extra-isComplete: `phase|`). */
  readonly call: string;
  readonly fault: MatrixFault;
}

export interface ScenarioResult {
  readonly scenario: Scenario;
  readonly result: LifecycleResult;
  readonly faultsInjected: number;
  /** What is wrong with the outcome; empty when it is right. */
  readonly problems: string[];
}

export interface MatrixFigures {
  scenarios: number;
  /** Scenarios in which the injected fault changed at least one answer. */
  faultsInjected: number;
  /** Answers the injected faults changed, in all. */
  answersChanged: number;
  leaksFound: number;
  wrongfulDeletes: number;
  succeeded: number;
  failedActionably: number;
  problems: number;
  /** Per kind of fault: scenarios that ended in success / in an actionable failure. */
  byFault: Record<string, { succeeded: number; failed: number }>;
}

/** The calls the handler makes in a clean run of the lifecycle, checked to succeed and leave nothing. */
export async function callsOf(aws: FakeAws, strategy: Strategy, lifecycle: Lifecycle): Promise<string[]> {
  aws.reset();
  const result = await runLifecycle(aws, { strategy, lifecycle });
  const problems = check({ strategy, lifecycle, call: 'none', fault: 'throttle' }, result, false);
  if (lifecycle !== 'failed-create' && result.outcomes.some((o) => o.status !== 'SUCCESS')) {
    problems.push(`the clean run did not succeed: ${result.outcomes.map((o) => `${o.reason} ${o.status} ${o.failureReason ?? ''}`).join('; ')}`);
  }
  if (problems.length > 0) {
    throw new Error(`clean ${strategy} ${lifecycle}: ${problems.join('; ')}`);
  }
  return [...new Set(aws.requests.filter((r) => r.principal === 'handler').map((r) => `${r.phase}|${r.service}:${r.action}`))];
}

export async function runScenario(aws: FakeAws, scenario: Scenario): Promise<ScenarioResult> {
  aws.reset();
  const [phase, call] = scenario.call.split('|');
  const [service, action] = call.split(':') as [FaultRule['service'], string];
  let repetition: RepetitionFault | undefined;
  if (scenario.fault === 'repeat-sequential' || scenario.fault === 'repeat-concurrent') {
    repetition = { kind: scenario.fault === 'repeat-sequential' ? 'sequential' : 'concurrent', phase, call };
  } else if (scenario.fault === 'extra-isComplete') {
    repetition = { kind: 'extra-isComplete', phase };
  } else if (scenario.fault === 'stale-state' || scenario.fault === 'stale-absent' || scenario.fault === 'lost-response') {
    aws.injectFault({ kind: scenario.fault, service, action, phase, maxHits: 1 });
  } else if (scenario.fault === 'recycle-bin') {
    aws.recycleBinRetentionMs = 7 * 86_400_000;
  } else if (scenario.fault in SERVICE_FAULTS) {
    aws.injectFault({ ...SERVICE_FAULTS[scenario.fault as keyof typeof SERVICE_FAULTS].rule, service, action, phase } as FaultRule);
  } else {
    const kind = scenario.fault as FaultKind;
    aws.injectFault({ kind, service, action, phase, ...FAULTS[kind] });
  }
  const result = await runLifecycle(aws, { strategy: scenario.strategy, lifecycle: scenario.lifecycle, repetition });
  const faultsInjected = repetition ? (result.repetitionFired ? 1 : 0) : scenario.fault === 'recycle-bin' ? aws.recycleBin.size : aws.faultsInjected;
  return { scenario, result, faultsInjected, problems: check(scenario, result, mustSucceed(scenario), aws) };
}

/** What the AMI of a build from these properties must hold: the image's non-zero blocks, computed apart from the handler. */
function expectedContent(props: UnikernelAmiProperties): string {
  return diskImageContent({ kernel: DEFAULT_KERNEL, name: props.Name, kernelArgs: props.KernelArgs, layout: props.Layout as DiskLayout, volumeSizeGiB: Number(props.VolumeSizeGiB) });
}

function check(scenario: Scenario, result: LifecycleResult, mustSucceed: boolean, aws?: FakeAws): string[] {
  const problems: string[] = [];
  for (const outcome of result.outcomes) {
    if (outcome.killedInvocations > 0) {
      problems.push(`${outcome.reason}: ${outcome.killedInvocations} invocation(s) cut off by the Lambda timeout`);
    }
    if (outcome.responseBytes >= CFN_RESPONSE_LIMIT_BYTES) {
      problems.push(`${outcome.reason}: a ${outcome.responseBytes}-byte response`);
    }
    if (outcome.status === 'FAILED') {
      const reason = outcome.failureReason ?? '';
      if (!/mua-[0-9a-f]{16}/.test(reason) || reason === 'Operation timed out') {
        problems.push(`${outcome.reason}: a failure the user cannot act on: ${reason}`);
      }
      if (mustSucceed && !(scenario.lifecycle === 'failed-create' && outcome.reason === 'create')) {
        problems.push(`${outcome.reason}: failed although the fault was transient: ${reason}`);
      }
    }
  }
  for (const leak of result.leaks) {
    problems.push(`leak: ${leak.kind} ${leak.id} (${leak.state ?? ''}) of build ${leak.buildId ?? '?'}`);
  }
  for (const gone of result.wrongfulDeletes) {
    problems.push(`wrongful delete: the AMI ${gone.imageId} (${gone.imageState}) with snapshot ${gone.snapshotId ?? '?'} (${gone.snapshotState}) of ${gone.physicalId}, reported to CloudFormation, was gone at ${gone.foundAt}`);
  }
  for (const outcome of result.outcomes) {
    if (outcome.lateResponses.some((status) => status !== outcome.status)) {
      problems.push(`${outcome.reason}: a repeated delivery answered ${outcome.lateResponses.join('/')} where the first answered ${outcome.status}`);
    }
  }
  if (aws) {
    const p1 = lifecycleProperties(scenario);
    // The live build is the first Create's, or the Update's (a rebuild, whose kernel arguments differ, or a rename).
    const finalProps = result.livePhysicalId && result.livePhysicalId !== result.outcomes[0].physicalResourceId ? updatePropertiesOf(scenario) : p1;
    for (const buildId of result.keptBuildIds) {
      const image = [...aws.world.images.values()].find((i) => i.state === 'available' && i.tags.some((t) => t.Value === buildId));
      const snapshot = image && aws.world.snapshots.get(image.blockDeviceMappings[0]?.Ebs?.SnapshotId ?? '');
      if (!image || !snapshot) {
        problems.push(`the build ${buildId} CloudFormation holds has no available AMI with its snapshot`);
      } else if (snapshot.content !== expectedContent(finalProps)) {
        problems.push(`the AMI ${image.id} of build ${buildId} does not hold the disk image`);
      }
    }
    if (result.livePhysicalId && result.liveProperties) {
      problems.push(...distributionProblems(aws, result.livePhysicalId, result.liveProperties));
    }
  }
  return problems;
}

/**
 * What the live AMI offers must be what CloudFormation holds for it (issue 17): the name, the
 * description, launch and create-volume permissions, deprecation and protection of its properties,
 * whatever fault came in between (a failed Update's rollback re-applies the old values).
 */
function distributionProblems(aws: FakeAws, buildId: string, props: UnikernelAmiProperties): string[] {
  const image = [...aws.world.images.values()].find((i) => i.state === 'available' && i.tags.some((t) => t.Key === BUILD_ID_TAG && t.Value === buildId));
  if (!image) {
    return [];
  }
  const snapshot = aws.world.snapshots.get(image.blockDeviceMappings[0]?.Ebs?.SnapshotId ?? '');
  const sharing = props.Sharing ?? {};
  const launch = [
    ...(sharing.Accounts ?? []).map((a) => `user:${a}`), ...(sharing.OrganizationArns ?? []).map((a) => `org:${a}`),
    ...(sharing.OrganizationalUnitArns ?? []).map((a) => `ou:${a}`), ...(sharing.Public === 'true' ? ['group:all'] : []),
  ];
  const deprecateAt = props.DeprecateAfterSeconds === undefined ? undefined : Math.round((image.createdAt + Number(props.DeprecateAfterSeconds) * 1000) / 60_000) * 60_000;
  const protection = { 'on': 'without-cooldown', 'on-with-cooldown': 'with-cooldown' }[props.DeregistrationProtection ?? ''];
  const wrong: string[] = [];
  const expect = (what: string, actual: unknown, expected: unknown) => {
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      wrong.push(`the live AMI ${image.id} has ${what} ${JSON.stringify(actual)} where its properties say ${JSON.stringify(expected)}`);
    }
  };
  expect('the name', image.name, `${props.ImageName ?? props.Name}-${buildId}`);
  if (props.ImageDescription !== undefined) {
    expect('the description', image.description, props.ImageDescription);
  }
  expect('launch permissions', [...(image.launchPermissions ?? [])].sort(), launch.sort());
  expect('create-volume permissions', [...(snapshot?.createVolumePermissions ?? [])].sort(), [...(sharing.SnapshotAccounts ?? [])].sort());
  expect('deprecation', image.deprecationTime, deprecateAt);
  expect('deregistration protection', image.protection, protection);
  return wrong;
}

export function tally(results: readonly ScenarioResult[]): MatrixFigures {
  const byFault: MatrixFigures['byFault'] = {};
  for (const r of results) {
    const entry = (byFault[r.scenario.fault] ??= { succeeded: 0, failed: 0 });
    if (r.result.outcomes.every((o) => o.status === 'SUCCESS')) {
      entry.succeeded++;
    } else {
      entry.failed++;
    }
  }
  return {
    scenarios: results.length,
    faultsInjected: results.filter((r) => r.faultsInjected > 0).length,
    answersChanged: results.reduce((n, r) => n + r.faultsInjected, 0),
    byFault,
    leaksFound: results.reduce((n, r) => n + r.result.leaks.length, 0),
    wrongfulDeletes: results.reduce((n, r) => n + r.result.wrongfulDeletes.length, 0),
    succeeded: results.filter((r) => r.result.outcomes.every((o) => o.status === 'SUCCESS')).length,
    failedActionably: results.filter((r) => r.result.outcomes.some((o) => o.status === 'FAILED') && r.problems.length === 0).length,
    problems: results.filter((r) => r.problems.length > 0).length,
  };
}

/** The figures as `npm test` prints them. */
export function figuresLine(title: string, figures: MatrixFigures): string {
  const kinds = Object.entries(figures.byFault).map(([kind, n]) => `${kind} ${n.succeeded}/${n.failed}`).join(', ');
  return `${title}: ${figures.scenarios} scenarios, ${figures.faultsInjected} faults injected (${figures.answersChanged} answers changed), `
    + `${figures.leaksFound} leaks found, ${figures.wrongfulDeletes} wrongful deletes; ${figures.succeeded} ended in success, ${figures.failedActionably} in a failure the user can act on, `
    + `${figures.problems} wrong (success/failure by fault: ${kinds})`;
}

/**
 * The scenarios of issue 15's kinds for each lifecycle (see the file comment): each of
 * REPEAT_AND_STALE at each distinct call, and extra-isComplete at each distinct isComplete phase,
 * in one lifecycle that makes it (seeded choice); lost-response at every create without client token.
 */
export function repeatAndStaleScenarios(strategy: Strategy, callsByLifecycle: ReadonlyMap<Lifecycle, readonly string[]>): Map<Lifecycle, Scenario[]> {
  const scenarios = new Map<Lifecycle, Scenario[]>([...callsByLifecycle.keys()].map((lifecycle) => [lifecycle, []]));
  const random = seededRandom(15);
  const assign = (call: string, fault: MatrixFault, having: Lifecycle[]) => {
    const lifecycle = having[Math.floor(random() * having.length)];
    scenarios.get(lifecycle)!.push({ strategy, lifecycle, call, fault });
  };
  const allCalls = [...new Set([...callsByLifecycle.values()].flat())].sort();
  for (const call of allCalls) {
    const having = [...callsByLifecycle].filter(([, calls]) => calls.includes(call)).map(([lifecycle]) => lifecycle);
    for (const fault of REPEAT_AND_STALE) {
      assign(call, fault, having);
    }
  }
  const phases = [...new Set(allCalls.map((call) => call.split('|')[0]).filter((phase) => phase.endsWith('/isComplete')))];
  for (const phase of phases) {
    assign(`${phase}|`, 'extra-isComplete', [...callsByLifecycle].filter(([, calls]) => calls.some((c) => c.startsWith(`${phase}|`))).map(([lifecycle]) => lifecycle));
  }
  for (const [lifecycle, calls] of callsByLifecycle) {
    for (const call of calls.filter((c) => LOST_RESPONSE_ACTIONS.has(c.split('|')[1]))) {
      scenarios.get(lifecycle)!.push({ strategy, lifecycle, call, fault: 'lost-response' });
    }
    for (const [fault, { at }] of Object.entries(SERVICE_FAULTS) as [keyof typeof SERVICE_FAULTS, { at: readonly string[] }][]) {
      for (const call of calls.filter((c) => at.some((a) => a === c.split('|')[1] || (a.endsWith(':*') && c.split('|')[1].startsWith(a.slice(0, -1)))))) {
        scenarios.get(lifecycle)!.push({ strategy, lifecycle, call, fault });
      }
    }
    scenarios.get(lifecycle)!.push({ strategy, lifecycle, call: '|none:none', fault: 'recycle-bin' });
  }
  return scenarios;
}

/**
 * Real time one lifecycle's scenarios may take (their AWS time is simulated). The rollback lifecycle
 * runs hundreds of scenarios: about a minute alone, but close to two minutes when other jest workers
 * share the machine's two cores: the 120 s that jest.config.js gives a test cut it off once.
 */
const MATRIX_TEST_TIMEOUT_MS = 15 * 60_000;

/**
 * Jest tests for one strategy: one test per lifecycle runs the faults of issue 11 at all its calls,
 * one more per lifecycle the faults of issue 15 assigned to it; the figures (leaks and wrongful
 * deletes included) are printed once all have run, for each group.
 *
 * `runOnly` splits a strategy's matrix over several test files, which jest runs in parallel: each
 * file runs the tests of its lifecycles, but the calls (and so the assignment of issue 15's kinds to
 * lifecycles) are still those of all `lifecycles`, so the files together run exactly the scenarios
 * one file would.
 */
export function defineMatrix(strategy: Strategy, lifecycles: readonly Lifecycle[], runOnly: readonly Lifecycle[] = lifecycles, title: string = strategy): void {
  const aws = new FakeAws();
  const all: ScenarioResult[] = [];
  const repeated: ScenarioResult[] = [];
  const callsByLifecycle = new Map<Lifecycle, string[]>();

  beforeAll(async () => {
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    for (const lifecycle of lifecycles) {
      callsByLifecycle.set(lifecycle, await callsOf(aws, strategy, lifecycle));
    }
    jest.restoreAllMocks();
  }, MATRIX_TEST_TIMEOUT_MS);

  beforeEach(() => {
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  afterAll(() => {
    const which = runOnly.length === lifecycles.length ? title : `${title} (${runOnly.join(', ')})`;
    process.stdout.write(`\n${figuresLine(`reliability matrix, ${which}`, tally(all))}\n`);
    process.stdout.write(`${figuresLine(`reliability matrix, ${which}, repetition and staleness`, tally(repeated))}\n`);
  });

  test.each(runOnly)(`${strategy}, %s: a fault at each call leaves the right outcome and nothing behind`, async (lifecycle) => {
    const calls = callsByLifecycle.get(lifecycle)!;
    expect(calls.length).toBeGreaterThan(3);
    const wrong: string[] = [];
    for (const call of calls) {
      for (const fault of Object.keys(FAULTS) as FaultKind[]) {
        const result = await runScenario(aws, { strategy, lifecycle, call, fault });
        all.push(result);
        wrong.push(...result.problems.map((problem) => `${fault} at ${call}: ${problem}`));
      }
    }
    expect(wrong).toEqual([]);
  }, MATRIX_TEST_TIMEOUT_MS);

  test.each(runOnly)(`${strategy}, %s: repeated invocations, stale reads and lost responses leave no leak, no wrongful delete, the right outcome`, async (lifecycle) => {
    const scenarios = repeatAndStaleScenarios(strategy, callsByLifecycle).get(lifecycle)!;
    const results: ScenarioResult[] = [];
    for (const scenario of scenarios) {
      results.push(await runScenario(aws, scenario));
    }
    repeated.push(...results);
    const figures = tally(results);
    const wrong = results.flatMap((r) => r.problems.map((problem) => `${r.scenario.fault} at ${r.scenario.call}: ${problem}`));
    expect({ leaks: figures.leaksFound, wrongfulDeletes: figures.wrongfulDeletes, wrong }).toEqual({ leaks: 0, wrongfulDeletes: 0, wrong: [] });
  }, MATRIX_TEST_TIMEOUT_MS);

  test(`${strategy}: repetition and staleness meet every call of the strategy at least once`, () => {
    const met = new Map<string, Set<MatrixFault>>();
    for (const scenarios of repeatAndStaleScenarios(strategy, callsByLifecycle).values()) {
      for (const s of scenarios) {
        met.set(s.call, (met.get(s.call) ?? new Set()).add(s.fault));
      }
    }
    const calls = [...new Set([...callsByLifecycle.values()].flat())];
    expect(calls.filter((call) => REPEAT_AND_STALE.some((fault) => !met.get(call)?.has(fault)))).toEqual([]);
  });
}
