/**
 * `builds` against the fake account: a stack whose builds were made by the real handler (a held
 * build deployed through the provider framework, a retained one, a failed Update that left a
 * snapshot its cleanup could not delete, a helper build cut off after its onEvent, and a build that
 * completed after its stack rolled back), listed, then `--remove-failed`.
 */
import { BUILDS_PERMISSIONS, REMOVE_FAILED_PERMISSIONS } from '../../../lib/cli/commands/builds';
import { isComplete, onEvent } from '../../../lib/unikernel-ami/handler/index';
import { OnEventRequest } from '../../../lib/unikernel-ami/handler/events';
import { parseStageLine } from '../../../lib/unikernel-ami/handler/stages';
import { createEvent, deleteEvent, ebsDirectProperties, helperInstanceProperties, isCompleteEvent, LOGICAL_ID, STACK_ID, STACK_NAME, STAGING_BUCKET, updateEvent } from '../../fixtures/custom-resource';
import { requestScope } from '../../fixtures/fake-aws';
import { completeRequest } from '../../fixtures/lifecycle';
import { deployStack, HANDLER_LOG_GROUP, runCliOnFake, useFakeStack } from '../../fixtures/stack-deploy';

const aws = useFakeStack();

const RETAINED_LOGICAL_ID = 'OldAmi5E6F7A8B';
const HELPER_LOGICAL_ID = 'HelperAmi9C0D1E2F';

function builds(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCliOnFake(aws, ['builds', STACK_NAME, ...args]);
}

/** The block of the listing that belongs to one build. */
function section(listing: string, buildId: string): string {
  const start = listing.indexOf(`${buildId}  `);
  expect(start).toBeGreaterThanOrEqual(0);
  const next = listing.slice(start + 1).search(/\nmua-/);
  return next < 0 ? listing.slice(start) : listing.slice(start, start + 1 + next);
}

function inPhase<T>(phase: string, work: () => Promise<T>): Promise<T> {
  return requestScope.run({ phase, invocation: { killed: false, simWaits: 0 } }, work);
}

/** Builds of every kind (see the file comment); returns their ids and what they left that matters. */
async function stackWithBuilds() {
  const deployed = await aws.drive(deployStack(aws, { strategy: 'ebs-direct', ending: 'success' }));
  const held = deployed.responses[0];

  const retainedProps = ebsDirectProperties({ RemovalPolicy: 'retain' });
  const retainedCreate = { ...createEvent(retainedProps, 'old-create'), LogicalResourceId: RETAINED_LOGICAL_ID };
  const retained = (await completeRequest(aws, retainedCreate)).response.PhysicalResourceId!;
  await completeRequest(aws, { ...deleteEvent(retained, retainedProps, 'old-delete'), LogicalResourceId: RETAINED_LOGICAL_ID });

  // A rebuilding Update whose snapshot fails; its cleanup is refused DeleteSnapshot for ten minutes.
  const update = updateEvent(held.physicalId, ebsDirectProperties({ KernelArgs: '--hello=2' }), ebsDirectProperties(), 'update-2');
  const started = await aws.drive(inPhase('Update/onEvent', () => onEvent(update)));
  aws.injectFault({ kind: 'error-state', service: 'ec2', action: 'DescribeSnapshots', phase: 'Update/isComplete' });
  aws.injectFault({ kind: 'access-denied', service: 'ec2', action: 'DeleteSnapshot', maxHits: Infinity, windowMs: 10 * 60_000 });
  await expect(aws.drive(inPhase('Update/isComplete', () => isComplete(isCompleteEvent(update, started))))).rejects.toThrow(/Snapshot snap-[0-9a-f]+ failed/);
  const failed = started.PhysicalResourceId!;

  // A helper build whose isComplete never comes: its helper, volumes and staged objects are there.
  const helperCreate: OnEventRequest = { ...createEvent(helperInstanceProperties(), 'helper-create'), LogicalResourceId: HELPER_LOGICAL_ID };
  const cutOff = (await aws.drive(inPhase('Create/onEvent', () => onEvent(helperCreate)))).PhysicalResourceId!;
  await aws.advance(60_000);
  return { held: held.physicalId, heldImage: held.data!.ImageId, heldSnapshot: held.data!.SnapshotId, retained, failed, cutOff };
}

describe('builds', () => {
  test('lists every build and what it left, marking the one CloudFormation holds and the retained one', async () => {
    const ids = await stackWithBuilds();
    const { code, stdout, stderr } = await builds();

    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(`Builds of stack ${STACK_NAME} (CREATE_COMPLETE), staging bucket ${STAGING_BUCKET}`);
    const held = section(stdout, ids.held);
    expect(held).toContain(`held by CloudFormation (${LOGICAL_ID}), recorded complete`);
    expect(held).toMatch(new RegExp(`image +${ids.heldImage}  available`));
    expect(held).toMatch(new RegExp(`snapshot +${ids.heldSnapshot}  completed`));
    expect(section(stdout, ids.retained)).toMatch(/retained \(no longer the stack's\), recorded complete[\s\S]*image +ami-[0-9a-f]+  available, retained/);
    const failed = section(stdout, ids.failed);
    expect(failed).toContain('no build record');
    expect(failed).toMatch(/snapshot +snap-[0-9a-f]+  error/);
    const cutOff = section(stdout, ids.cutOff);
    expect(cutOff).toContain('its helper is still there');
    expect(cutOff).toMatch(/instance +i-[0-9a-f]+  running/);
    expect(cutOff).toMatch(/volume +vol-[0-9a-f]+  in-use/);
    for (const name of ['blocks.gz', 'manifest.txt', 'progress.json']) {
      expect(cutOff).toContain(`staged object builds/${ids.cutOff}/${name}`);
    }
    // Every resource the fake account holds with the stack's id tag is listed.
    const tagged = [...aws.world.images.values(), ...aws.world.snapshots.values(), ...aws.world.instances.values(), ...aws.world.volumes.values()]
      .filter((r) => r.tags.some((t) => t.Key === 'mirage-unikernel-ami:stack-id' && t.Value === STACK_ID) && (r.kind !== 'instance' || r.state !== 'terminated'));
    expect(tagged.length).toBeGreaterThan(6);
    for (const resource of tagged) {
      expect(stdout).toContain(resource.id);
    }
  });

  test('--remove-failed removes only the provably failed build: never the held, the retained, nor a young one without a failed record', async () => {
    const ids = await stackWithBuilds();
    const failedSnapshot = [...aws.world.snapshots.values()].find((s) => s.tags.some((t) => t.Value === ids.failed))!.id;
    const everything = () => [...aws.world.images.keys(), ...aws.world.snapshots.keys()].sort();
    const before = everything();

    // WHEN the stack is updating: refused, nothing touched.
    aws.world.cloudFormation.setStackStatus(STACK_ID, 'UPDATE_IN_PROGRESS');
    const refused = await builds('--remove-failed');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/UPDATE_IN_PROGRESS: a build of the operation under way would look failed/);
    aws.world.cloudFormation.setStackStatus(STACK_ID, 'UPDATE_COMPLETE');

    // WHEN the failed build is younger than CloudFormation's hour: kept, as its operation may still run.
    const young = await builds('--remove-failed');
    expect(young.code).toBe(0);
    expect(young.stdout).toContain(`keep ${ids.held}: CloudFormation holds it`);
    expect(young.stdout).toContain(`keep ${ids.retained}: it is retained`);
    expect(young.stdout).toMatch(new RegExp(`keep ${ids.failed}: it is \\d+m\\d\\ds old and has no failed record`));
    expect(everything()).toEqual(before);

    // WHEN two hours have passed: the failed build's snapshot goes, by the handler's sweep.
    await aws.advance(2 * 3600_000);
    const late = await builds('--remove-failed');
    expect(late.code).toBe(0);
    expect(late.stdout).toContain(`delete-snapshot snapshotId=${failedSnapshot}`);
    expect(late.stdout).toContain(`sweep-failed-build failedBuildId=${ids.failed}`);
    expect(aws.world.snapshots.has(failedSnapshot)).toBe(false);
    expect(everything()).toEqual(before.filter((id) => id !== failedSnapshot));
    // The held and retained builds are whole.
    expect(aws.world.images.get(ids.heldImage)?.state).toBe('available');
    expect(aws.world.snapshots.get(ids.heldSnapshot)?.state).toBe('completed');
    const retainedImage = [...aws.world.images.values()].find((i) => i.tags.some((t) => t.Value === ids.retained))!;
    expect(retainedImage.state).toBe('available');
    expect((await builds()).stdout).not.toContain(ids.failed);
  });

  test('a build that completed after its stack rolled back is listed, not held, and --remove-failed keeps it (recorded complete)', async () => {
    await aws.drive(deployStack(aws, { strategy: 'helper-instance', ending: 'rollback', rollbackAfter: 'agent-online' }));
    const orphan = (aws.world.logs.groups.get(HANDLER_LOG_GROUP) ?? []).map((e) => parseStageLine(e.message)).find((l) => l?.stage === 'complete')!;
    await aws.advance(2 * 3600_000);

    const listed = await builds();
    expect(section(listed.stdout, orphan.buildId)).toMatch(/recorded complete/);
    expect(section(listed.stdout, orphan.buildId)).not.toContain('held by CloudFormation');
    const removal = await builds('--remove-failed');
    expect(removal.code).toBe(0);
    expect(removal.stdout).toContain(`keep ${orphan.buildId}: it has an available AMI`);
    expect(removal.stdout).not.toMatch(/deregister-image|delete-snapshot/);
    expect(aws.world.images.get(orphan.imageId!)?.state).toBe('available');
  });

  test('the calls it makes: listing only BUILDS_PERMISSIONS; --remove-failed within REMOVE_FAILED_PERMISSIONS besides', async () => {
    await stackWithBuilds();
    const cliRequests = () => aws.requests.filter((r) => r.principal === 'handler' && r.phase === undefined);
    const handlerCount = cliRequests().length;
    await builds();
    const listing = new Set(cliRequests().slice(handlerCount).map((r) => `${r.service}:${r.action}`.replace('s3:ListObjectsV2', 's3:ListBucket')));
    expect([...listing].sort()).toEqual([...BUILDS_PERMISSIONS].sort());
    await aws.advance(2 * 3600_000);
    const listed = cliRequests().length;
    await builds('--remove-failed');
    const removing = new Set(cliRequests().slice(listed).map((r) => `${r.service}:${r.action}`.replace('s3:ListObjectsV2', 's3:ListBucket')));
    const allowed: readonly string[] = [...BUILDS_PERMISSIONS, ...REMOVE_FAILED_PERMISSIONS];
    expect([...removing].filter((a) => !allowed.includes(a))).toEqual([]);
    expect(removing.has('ec2:DeleteSnapshot')).toBe(true);
  });

  test.each([
    [['builds'], /expected exactly one STACK/],
    [['builds', STACK_NAME, '--force'], /unknown option --force/],
    [['builds', 'NoSuchStack'], /knows no stack NoSuchStack/],
  ])('%j: one line, exit 2', async (argv, message) => {
    await aws.drive(deployStack(aws, { strategy: 'ebs-direct', ending: 'success' }));
    const { code, stderr } = await runCliOnFake(aws, argv);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });
});
