/**
 * `watch` against the fake account, on simulated time: a deploy plays CloudFormation's side and
 * runs the real handler behind the real provider framework (test/fixtures/stack-deploy.ts), its log
 * lines going to the fake CloudWatch Logs as Lambda writes them; `watch` runs beside it, polling
 * the fake CloudFormation and Logs as it would AWS.
 */
import { runCli } from '../../../lib/cli';
import { parseStageLine } from '../../../lib/unikernel-ami/handler/stages';
import { LOGICAL_ID, STACK_NAME } from '../../fixtures/custom-resource';
import { CDK_PATH, deleteStack, DeployEnding, deployStack, DeployResult, HANDLER_LOG_GROUP, runCliOnFake, startCli, Strategy, updateStack, useFakeStack } from '../../fixtures/stack-deploy';
import { WATCH_PERMISSIONS } from '../../../lib/cli/commands/watch';

const aws = useFakeStack();

interface Watched {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly deploy: DeployResult;
}

/** Deploys with the given ending while `watch ARGS` follows it, in plain or terminal mode. */
async function watchDeploy(strategy: Strategy, ending: DeployEnding, args: readonly string[], terminal = false): Promise<Watched> {
  const [deploy, watched] = await aws.drive(Promise.all([deployStack(aws, { strategy, ending }), startCli(aws, ['watch', ...args], terminal)]));
  return { ...watched, deploy };
}

/** The stage lines the handler wrote to the log group, for comparing with what watch showed. */
function loggedStages(): { stage: string; buildId: string; stream: string; reason?: string }[] {
  return (aws.world.logs.groups.get(HANDLER_LOG_GROUP) ?? []).flatMap((e) => {
    const line = parseStageLine(e.message);
    return line ? [{ stage: line.stage, buildId: line.buildId, stream: e.stream, reason: line.reason }] : [];
  });
}

/** Where each text first appears in the output, to check their order. */
function positions(output: string, texts: readonly RegExp[]): number[] {
  return texts.map((text) => output.search(text));
}

const SEQUENCES: Record<Strategy, RegExp[]> = {
  'helper-instance': [/staging the disk image/, /staged \d+ blocks?,/, /helper i-[0-9a-f]+ launched/, /agent online/, /blocks written \d+\/\d+, verified/, /snapshot \d+%/, /image registered ami-/],
  'ebs-direct': [/writing blocks|blocks written \d+/, /blocks written \d+\/\d+, verified/, /snapshot \d+%/, /image registered ami-/],
};

describe.each(['helper-instance', 'ebs-direct'] as const)('watch follows a %s build', (strategy) => {
  test('to success: each stage in order with its time, an estimate while it runs, exit 0 with the AMI CloudFormation got', async () => {
    const { code, stdout, stderr, deploy } = await watchDeploy(strategy, 'success', [STACK_NAME]);

    expect(stderr).toBe('');
    expect(code).toBe(0);
    const created = deploy.responses.find((r) => r.requestType === 'Create')!;
    expect(created.status).toBe('SUCCESS');
    const order = positions(stdout, SEQUENCES[strategy]);
    expect(order.every((p) => p >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // Plain mode: every progress line starts with its time; the estimate shows while the build runs.
    const progress = stdout.split('\n').filter((line) => line.includes(created.physicalId));
    expect(progress.length).toBeGreaterThan(3);
    for (const line of progress.filter((l) => !l.startsWith('build ') && !l.startsWith('full log'))) {
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}/);
    }
    expect(stdout).toMatch(/about \d+(m\d\ds|s) left/);
    expect(stdout).toContain(`complete in `);
    expect(stdout).toContain(`AMI ${created.data!.ImageId} (snapshot ${created.data!.SnapshotId})`);
    expect(stdout).toMatch(/stages: started \d+(m\d\ds|s), .*image-registered \d+(m\d\ds|s), complete 0s/);
    expect(stdout).toContain(`${LOGICAL_ID} CREATE_COMPLETE`);
    expect(stdout).not.toContain('\x1b[');
  });

  test('to failure: the reason the handler logged, where the full log is, exit 1', async () => {
    const { code, stdout, deploy } = await watchDeploy(strategy, 'failure', [STACK_NAME, CDK_PATH]);

    expect(code).toBe(1);
    const created = deploy.responses.find((r) => r.requestType === 'Create')!;
    expect(created.status).toBe('FAILED');
    const failed = loggedStages().find((s) => s.stage === 'failed')!;
    expect(failed.reason).toMatch(strategy === 'helper-instance' ? /cancelled/ : /Snapshot snap-[0-9a-f]+ failed/);
    expect(stdout).toContain(`failed after `);
    expect(stdout).toContain(failed.reason!);
    expect(stdout).toContain(`full log: log group ${HANDLER_LOG_GROUP}, stream ${failed.stream}`);
    expect(stdout).toMatch(new RegExp(`${LOGICAL_ID} CREATE_FAILED: .*${failed.buildId}`));
    expect(stdout).toContain('the stack rolled back (ROLLBACK_COMPLETE)');
    // A Delete after the build's own failure is no Delete while it runs.
    expect(stdout).not.toContain('(a Delete while the build runs)');
    // The framework appends the log group and a stack trace to the reason: only its first line is shown.
    expect(stdout).not.toMatch(/^\s+at /m);
  });

  test('through a rollback while it runs: the cancelled Create, the Delete, and a build that outlives its stack, exit 1', async () => {
    const { code, stdout } = await watchDeploy(strategy, 'rollback', [STACK_NAME]);

    expect(code).toBe(1);
    const started = loggedStages().find((s) => s.stage === 'started')!;
    const order = positions(stdout, [
      new RegExp(`${LOGICAL_ID} CREATE_FAILED: Resource creation cancelled`),
      /stack UnikernelStack ROLLBACK_IN_PROGRESS/,
      new RegExp(`${LOGICAL_ID} DELETE_IN_PROGRESS \\(a Delete while the build runs\\)`),
      /stack UnikernelStack ROLLBACK_COMPLETE/,
      new RegExp(`the stack is ROLLBACK_COMPLETE, but build ${started.buildId} is still running`),
      new RegExp(`build ${started.buildId} completed, but CloudFormation does not hold it`),
    ]);
    expect(order.every((p) => p >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(stdout).toContain('the stack rolled back (ROLLBACK_COMPLETE): OtherResource1234ABCD CREATE_FAILED');
  });
});

describe('watch on a terminal', () => {
  test.each(['helper-instance', 'ebs-direct'] as const)('%s: a progress bar redrawn in place, a line per stage, the same outcome', async (strategy) => {
    const { code, stdout } = await watchDeploy(strategy, 'success', [STACK_NAME], true);

    expect(code).toBe(0);
    expect(stdout).toMatch(/\r\x1b\[K\[#*-*\] \d+% /);
    expect(stdout).toMatch(/about \d+(m\d\ds|s) left/);
    // Stage lines carry the time of day; the bar is cleared before each of them.
    expect(stdout).toMatch(/\r\x1b\[K\d\d:\d\d:\d\d mua-[0-9a-f]{16} /);
    const visible = stdout.split('\r\x1b[K').join('\n');
    expect(positions(visible, SEQUENCES[strategy]).every((p) => p >= 0)).toBe(true);
    expect(visible).toContain('complete in ');
  });

  test.each(['failure', 'rollback'] as const)('a %s on a terminal ends the bar and prints the outcome and the log', async (ending) => {
    const { code, stdout } = await watchDeploy(ending === 'failure' ? 'ebs-direct' : 'helper-instance', ending, [STACK_NAME], true);
    expect(code).toBe(1);
    expect(stdout).toMatch(/\r\x1b\[K\[#*-*\] \d+% /);
    expect(stdout).toContain(`full log: log group ${HANDLER_LOG_GROUP}`);
    expect(stdout).toContain('the stack rolled back (ROLLBACK_COMPLETE)');
    if (ending === 'rollback') {
      expect(stdout).toMatch(/\r\x1b\[K\d\d:\d\d:\d\d HelloAmi1A2B3C4D DELETE_IN_PROGRESS \(a Delete while the build runs\)/);
    }
  });

});

describe('watch through an update', () => {
  test.each(['helper-instance', 'ebs-direct'] as const)('%s: a rebuild, then CloudFormation\'s removal of the previous build, exit 0', async (strategy) => {
    const first = await aws.drive(deployStack(aws, { strategy, ending: 'success' }));
    const updated = updateStack(aws, strategy);
    const [update, watched] = await aws.drive(Promise.all([updated, startCli(aws, ['watch', STACK_NAME])]));
    const previous = first.responses[0].physicalId;
    const rebuilt = update.responses.find((r) => r.requestType === 'Update')!;
    expect(rebuilt.physicalId).not.toBe(previous);
    expect(watched.stdout).toContain(`${rebuilt.physicalId} image registered`);
    expect(watched.stdout).toContain(`AMI ${rebuilt.data!.ImageId}`);
    expect(watched.stdout).not.toContain('does not hold it');
    expect(watched.code).toBe(0);
  });
});

describe('watch through a stack delete', () => {
  test('a deliberate delete of the stack: the handler removes the build CloudFormation held, exit 0', async () => {
    const deploy = await aws.drive(deployStack(aws, { strategy: 'ebs-direct', ending: 'success' }));
    const deleted = deleteStack(aws, 'ebs-direct');
    const [, watched] = await aws.drive(Promise.all([deleted, startCli(aws, ['watch', STACK_NAME])]));
    expect(watched.code).toBe(0);
    const held = deploy.responses[0].physicalId;
    expect(watched.stdout).toContain(`the handler began removing build ${held}\n`);
    expect(watched.stdout).not.toContain('writing blocks');
    expect(watched.stdout).toContain(`${LOGICAL_ID} is DELETE_COMPLETE: its build is removed`);
  });
});

describe('watch --build', () => {
  test('follows one build by its id, finding its stack by the build\'s tags', async () => {
    let stdout = '';
    const deploy = deployStack(aws, { strategy: 'ebs-direct', ending: 'success' });
    const watched = (async () => {
      // The build id is known once the handler has logged it (a user copies it from the logs or the console).
      while (!loggedStages().some((s) => s.stage === 'started')) {
        await aws.clock.sleep(1000);
      }
      const buildId = loggedStages().find((s) => s.stage === 'started')!.buildId;
      return runCli(['watch', '--build', buildId], { stdout: (t) => (stdout += t), stderr: (t) => (stdout += t), clock: aws.clock });
    })();
    const [result, code] = await aws.drive(Promise.all([deploy, watched]));
    expect(code).toBe(0);
    expect(stdout).toContain(`AMI ${result.responses[0].data!.ImageId}`);
  });
});

describe('watch: what it needs and what it refuses', () => {
  test('the calls it makes are exactly WATCH_PERMISSIONS, all read-only', async () => {
    const cliRequests = () => aws.requests.filter((r) => r.principal === 'handler' && r.phase === undefined);
    // A deploy followed by construct path, then the settled stack, then the build by its id alone.
    await watchDeploy('helper-instance', 'success', [STACK_NAME, CDK_PATH]);
    const buildId = loggedStages()[0].buildId;
    for (const argv of [['watch', STACK_NAME], ['watch', '--build', buildId]]) {
      expect((await runCliOnFake(aws, argv)).code).toBe(0);
    }
    // The handler's requests carry the phase the deploy runs them in; watch's have none.
    const actions = new Set(cliRequests().map((r) => `${r.service}:${r.action}`));
    expect([...actions].sort()).toEqual([...WATCH_PERMISSIONS].sort());
    expect([...actions].every((a) => /:(Describe|Filter)/.test(a))).toBe(true);
  });

  test('a settled stack: the outcome from the held build\'s record', async () => {
    await aws.drive(deployStack(aws, { strategy: 'ebs-direct', ending: 'success' }));
    const { code, stdout } = await runCliOnFake(aws, ['watch', STACK_NAME]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/no deploy in progress/);
    expect(stdout).toMatch(/build mua-[0-9a-f]{16} complete \(recorded\): AMI ami-/);
  });

  test.each([
    [['watch'], /expected STACK \[CONSTRUCT_PATH\]/],
    [['watch', '--build', 'i-0123'], /not a build id/],
    [['watch', STACK_NAME, '--interval', '0'], /--interval must be a positive number/],
    [['watch', 'NoSuchStack'], /knows no stack NoSuchStack/],
    [['watch', STACK_NAME, 'NoSuchPath'], /no MirageUnikernelAmi resource of stack UnikernelStack has the logical id or construct path NoSuchPath/],
  ])('%j: one line, exit 2', async (argv, message) => {
    await aws.drive(deployStack(aws, { strategy: 'ebs-direct', ending: 'success' }));
    const { code, stderr } = await runCliOnFake(aws, argv);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });
});
