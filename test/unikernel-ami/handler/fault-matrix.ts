/**
 * The fault matrix of issue 11: for a strategy and a lifecycle, a fault is injected at every AWS
 * call the handler makes, one call and one kind of fault at a time. The list of calls is not
 * written here: it is recorded from a clean run of the same lifecycle, so a call the handler starts
 * making cannot escape the matrix. A call is its phase (the CloudFormation request and the handler
 * entry point, e.g. `Update/isComplete`) with its service and action.
 *
 * After each scenario: the CloudFormation outcomes are right (success with real ids whose snapshot
 * holds the image, or a failure a user can act on, within CloudFormation's 4,096 bytes), no
 * invocation outlasted its Lambda timeout, and nothing of any build is left but what CloudFormation
 * holds or RETAIN keeps.
 */
import { DiskLayout } from '../../../lib/disk-image';
import { UnikernelAmiProperties } from '../../../lib/unikernel-ami/types';
import { diskImageContent, FakeAws, FaultKind, FaultRule, STATEFUL_ACTIONS } from '../../fixtures/fake-aws';
import { CFN_RESPONSE_LIMIT_BYTES, DEFAULT_KERNEL, Lifecycle, lifecycleProperties, LifecycleResult, runLifecycle, Strategy } from '../../fixtures/lifecycle';

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
  return MUST_SUCCEED.has(scenario.fault) || (scenario.fault === 'never-finishes' && !STATEFUL_ACTIONS.has(call));
}

export interface Scenario {
  readonly strategy: Strategy;
  readonly lifecycle: Lifecycle;
  /** `phase|service:action`. */
  readonly call: string;
  readonly fault: FaultKind;
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
  aws.injectFault({ kind: scenario.fault, service, action, phase, ...FAULTS[scenario.fault] });
  const result = await runLifecycle(aws, { strategy: scenario.strategy, lifecycle: scenario.lifecycle });
  return { scenario, result, faultsInjected: aws.faultsInjected, problems: check(scenario, result, mustSucceed(scenario), aws) };
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
  if (aws) {
    const p1 = lifecycleProperties(scenario);
    // The live build is the first Create's, or the rebuild's (whose kernel arguments differ).
    const finalProps = result.livePhysicalId && result.livePhysicalId !== result.outcomes[0].physicalResourceId
      ? { ...p1, KernelArgs: `${p1.KernelArgs} console=hvc0`.trim() }
      : p1;
    for (const buildId of result.keptBuildIds) {
      const image = [...aws.world.images.values()].find((i) => i.state === 'available' && i.tags.some((t) => t.Value === buildId));
      const snapshot = image && aws.world.snapshots.get(image.blockDeviceMappings[0]?.Ebs?.SnapshotId ?? '');
      if (!image || !snapshot) {
        problems.push(`the build ${buildId} CloudFormation holds has no available AMI with its snapshot`);
      } else if (snapshot.content !== expectedContent(finalProps)) {
        problems.push(`the AMI ${image.id} of build ${buildId} does not hold the disk image`);
      }
    }
  }
  return problems;
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
    succeeded: results.filter((r) => r.result.outcomes.every((o) => o.status === 'SUCCESS')).length,
    failedActionably: results.filter((r) => r.result.outcomes.some((o) => o.status === 'FAILED') && r.problems.length === 0).length,
    problems: results.filter((r) => r.problems.length > 0).length,
  };
}

/** The figures as `npm test` prints them. */
export function figuresLine(title: string, figures: MatrixFigures): string {
  const kinds = Object.entries(figures.byFault).map(([kind, n]) => `${kind} ${n.succeeded}/${n.failed}`).join(', ');
  return `${title}: ${figures.scenarios} scenarios, ${figures.faultsInjected} faults injected (${figures.answersChanged} answers changed), `
    + `${figures.leaksFound} leaks found; ${figures.succeeded} ended in success, ${figures.failedActionably} in a failure the user can act on, `
    + `${figures.problems} wrong (success/failure by fault: ${kinds})`;
}

/**
 * Real time one lifecycle's scenarios may take (their AWS time is simulated). The rollback lifecycle
 * runs hundreds of scenarios: about a minute alone, but close to two minutes when other jest workers
 * share the machine's two cores: the 120 s that jest.config.js gives a test cut it off once.
 */
const MATRIX_TEST_TIMEOUT_MS = 15 * 60_000;

/**
 * Jest tests for one strategy: one test per lifecycle runs all its scenarios; the figures are
 * printed once all have run.
 */
export function defineMatrix(strategy: Strategy, lifecycles: readonly Lifecycle[]): void {
  const aws = new FakeAws();
  const all: ScenarioResult[] = [];

  beforeEach(() => {
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  afterAll(() => {
    process.stdout.write(`\n${figuresLine(`reliability matrix, ${strategy}`, tally(all))}\n`);
  });

  test.each(lifecycles)(`${strategy}, %s: a fault at each call leaves the right outcome and nothing behind`, async (lifecycle) => {
    const calls = await callsOf(aws, strategy, lifecycle);
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
}
