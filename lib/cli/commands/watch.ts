/**
 * `watch STACK [CONSTRUCT_PATH]` and `watch --build BUILD_ID [STACK]`: follows a build live, from
 * three read-only sources:
 * - the handler's stage lines (handler/stages.ts) in the handlers' log group, found among the
 *   stack's resources (FilterLogEvents): the stages, their times, blocks and snapshot progress;
 * - the stack's events (DescribeStackEvents): what CloudFormation does meanwhile (a rollback, the
 *   Delete it sends to a build it cancelled);
 * - the build record on the AMI (build-record.ts), for a build that ended before `watch` began.
 * CloudFormation shows no physical id while a custom resource is in progress, so the build of the
 * resource is the one whose `started` line names the stack's id and the resource's logical id.
 */
import { CloudFormationClient, DescribeStackEventsCommand, StackEvent, StackResource } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, FilterLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DescribeImagesCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, EC2Client, Tag } from '@aws-sdk/client-ec2';
import { isBuildId } from '../../unikernel-ami/handler/build-id';
import { recordOf } from '../../unikernel-ami/handler/build-record';
import { parseStageLine, StageLine } from '../../unikernel-ami/handler/stages';
import { BUILD_ID_TAG, OPERATION_TIMING, RESOURCE_TAG, STACK_ID_TAG } from '../../unikernel-ami/types';
import { CliClock, formatDuration, isoSeconds, REAL_CLI_CLOCK, requireRegion, withCredentials } from '../aws';
import { BuildProgress } from '../build-progress';
import { CliIo, UsageError } from '../io';
import { parseOptions } from '../options';
import { describeStack, handlerLogGroup, inProgress, selectResource, StackView, stackResources } from '../stack';

/** Every call `watch` makes: all read-only (the README's CLI section lists them). */
export const WATCH_PERMISSIONS = [
  'cloudformation:DescribeStacks',
  'cloudformation:DescribeStackResources',
  'cloudformation:DescribeStackResource',
  'cloudformation:DescribeStackEvents',
  'logs:FilterLogEvents',
  'ec2:DescribeImages',
  'ec2:DescribeSnapshots',
  'ec2:DescribeInstances',
] as const;

const DEFAULT_INTERVAL_SECONDS = 5;
/** CloudFormation's hour for a custom resource, and a margin for the rollback after it. */
const DEFAULT_TIMEOUT_MINUTES = OPERATION_TIMING.serviceTimeoutSeconds / 60 + 30;
/** Lines are read from a little before the operation began (clocks, Lambda's own start). */
const LOG_LOOKBACK_MS = 60_000;
/** Log events arrive late (ingestion): each poll reads again this far back, and skips what it has seen. */
const LOG_OVERLAP_MS = 5 * 60_000;
/** `--build` without a stack to start from looks this far back for the build's lines. */
const BUILD_LOOKBACK_MS = 3 * 3600_000;
const BAR_WIDTH = 24;
/** How much earlier than CloudFormation's event of an operation the handler's clock may date the operation's first line. */
const CLOCK_SKEW_MS = 1000;

interface WatchOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export async function watchCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { positional, options } = parseOptions(args, ['region', 'build', 'interval', 'timeout']);
  const buildId = options.build;
  if (buildId !== undefined && !isBuildId(buildId)) {
    throw new UsageError(`'${buildId}' is not a build id (mua- and 16 hex digits, the resource's physical id)`);
  }
  if (buildId === undefined ? positional.length < 1 || positional.length > 2 : positional.length > 1) {
    throw new UsageError(buildId === undefined ? 'expected STACK [CONSTRUCT_PATH]' : 'expected --build BUILD_ID [STACK]');
  }
  const watchOptions: WatchOptions = {
    intervalMs: positiveNumber(options.interval, 'interval', DEFAULT_INTERVAL_SECONDS) * 1000,
    timeoutMs: positiveNumber(options.timeout, 'timeout', DEFAULT_TIMEOUT_MINUTES) * 60_000,
  };
  const clients = {
    cfn: new CloudFormationClient({ region: options.region }),
    logs: new CloudWatchLogsClient({ region: options.region }),
    ec2: new EC2Client({ region: options.region }),
  };
  await requireRegion(clients.cfn, 'watch', 'the stack\'s region');
  const watcher = new Watcher(clients, io, io.clock ?? REAL_CLI_CLOCK, watchOptions);
  return withCredentials('watch', `the read-only calls ${WATCH_PERMISSIONS.join(', ')}`, () =>
    (buildId !== undefined ? watcher.followBuild(buildId, positional[0]) : watcher.followStack(positional[0], positional[1])));
}

function positiveNumber(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) {
    return fallback;
  }
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new UsageError(`--${name} must be a positive number, got '${value}'`);
  }
  return number;
}

interface Clients {
  readonly cfn: CloudFormationClient;
  readonly logs: CloudWatchLogsClient;
  readonly ec2: EC2Client;
}

/** What `watch` follows: a stack's resource, its build (once known), and the stack's events. */
interface Target {
  readonly stack?: StackView;
  readonly logicalId?: string;
  readonly logGroup: string;
  /** Events and lines before this are not the operation's. */
  readonly since: number;
  buildId?: string;
  resourceStatus?: string;
  resourceReason?: string;
  stackStatus?: string;
  /** The build CloudFormation holds since the operation's resource event said complete. */
  heldBuildId?: string;
  /** CloudFormation cancelled the resource's operation (another resource failed): its Delete comes while the build runs. */
  cancelled?: boolean;
}

class Watcher {
  private readonly seenEvents = new Set<string>();
  private readonly seenLines = new Set<string>();
  /** Builds whose removal the handler began in this operation. */
  private readonly removing = new Set<string>();
  private lastLogTime = 0;
  private build?: BuildProgress;
  private lastShown = '';
  private barDrawn = false;
  private outlivedNoted = false;

  constructor(private readonly aws: Clients, private readonly io: CliIo, private readonly clock: CliClock, private readonly options: WatchOptions) {}

  async followStack(stackName: string, constructPath?: string): Promise<number> {
    const stack = await describeStack(this.aws.cfn, stackName);
    const resources = await stackResources(this.aws.cfn, stack.stackId);
    const resource = await selectResource(this.aws.cfn, stack, resources, constructPath);
    const logGroup = requireLogGroup(stack, resources);
    const events = await this.stackEvents(stack.stackId, 0);
    // The latest operation the stack began (stackEvents answers oldest first).
    const operation = [...events].reverse().find((e) => e.ResourceType === 'AWS::CloudFormation::Stack' && /^(CREATE|UPDATE|DELETE|IMPORT)_IN_PROGRESS$/.test(e.ResourceStatus ?? ''));
    if (!inProgress(stack.status)) {
      return this.reportSettled(stack, resource);
    }
    const since = operation?.Timestamp?.getTime() ?? this.clock.now();
    for (const event of events) {
      if ((event.Timestamp?.getTime() ?? 0) < since) {
        this.seenEvents.add(event.EventId ?? '');
      }
    }
    this.line(`watching ${resource.LogicalResourceId} of stack ${stack.stackName} (${stack.status}); handler log group ${logGroup}`);
    return this.follow({ stack, logicalId: resource.LogicalResourceId, logGroup, since, stackStatus: stack.status, resourceStatus: resource.ResourceStatus });
  }

  async followBuild(buildId: string, stackName?: string): Promise<number> {
    const stackRef = stackName ?? (await this.stackOfBuild(buildId));
    const stack = await describeStack(this.aws.cfn, stackRef);
    const resources = await stackResources(this.aws.cfn, stack.stackId);
    const logGroup = requireLogGroup(stack, resources);
    this.line(`watching build ${buildId} of stack ${stack.stackName}; handler log group ${logGroup}`);
    const since = this.clock.now() - BUILD_LOOKBACK_MS;
    for (const event of await this.stackEvents(stack.stackId, 0)) {
      this.seenEvents.add(event.EventId ?? '');
    }
    return this.follow({ stack, logGroup, since, buildId, stackStatus: stack.status });
  }

  /** The stack of a build, from the stack-id tag of what it made (EC2 lists new resources by tag late: asked again until the timeout). */
  private async stackOfBuild(buildId: string): Promise<string> {
    const endsAt = this.clock.now() + this.options.timeoutMs;
    const filters = [{ Name: `tag:${BUILD_ID_TAG}`, Values: [buildId] }];
    for (;;) {
      const tagLists: (Tag[] | undefined)[] = [
        ...((await this.aws.ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }))).Images ?? []).map((i) => i.Tags),
        ...((await this.aws.ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters }))).Snapshots ?? []).map((s) => s.Tags),
        ...((await this.aws.ec2.send(new DescribeInstancesCommand({ Filters: filters }))).Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.Tags),
      ];
      const stackId = tagLists.map((tags) => tags?.find((t) => t.Key === STACK_ID_TAG)?.Value).find((v) => v);
      if (stackId) {
        return stackId;
      }
      if (this.clock.now() >= endsAt) {
        throw new UsageError(`nothing of build ${buildId} is found in this region; name its stack: watch --build ${buildId} STACK`);
      }
      await this.clock.sleep(this.options.intervalMs);
    }
  }

  private async follow(target: Target): Promise<number> {
    const endsAt = this.clock.now() + this.options.timeoutMs;
    for (;;) {
      if (target.stack) {
        for (const event of await this.stackEvents(target.stack.stackId, target.since)) {
          this.takeEvent(target, event);
        }
      }
      for (const { line, stream } of await this.stageLines(target)) {
        this.takeLine(target, line, stream);
      }
      const ended = this.ended(target);
      if (ended !== undefined) {
        return this.finish(target);
      }
      this.drawBar();
      if (this.clock.now() >= endsAt) {
        this.line(`gave up after ${formatDuration(this.options.timeoutMs)} (--timeout); the build ${target.buildId ?? '(not started yet)'} is ${this.build?.describe() ?? 'not seen'}`);
        return 1;
      }
      await this.clock.sleep(this.options.intervalMs);
    }
  }

  /** Whether there is nothing more to follow. */
  private ended(target: Target): true | undefined {
    const outcome = this.build?.outcome;
    const resourceBusy = inProgress(target.resourceStatus);
    const stackBusy = inProgress(target.stackStatus);
    if (target.logicalId === undefined) {
      // --build: the build's own outcome ends it.
      return outcome ? true : undefined;
    }
    if (outcome && !resourceBusy) {
      return true;
    }
    if (!resourceBusy && !stackBusy && (!this.build || outcome)) {
      return true;
    }
    // A resource CloudFormation holds as complete has its complete line on the way (log ingestion
    // lags): waited for. One it no longer holds may leave its build running on its own.
    const held = target.resourceStatus === 'CREATE_COMPLETE' || target.resourceStatus === 'UPDATE_COMPLETE';
    if (!stackBusy && !held && this.build && !outcome && !this.outlivedNoted) {
      this.outlivedNoted = true;
      this.line(`the stack is ${target.stackStatus}, but build ${this.build.buildId} is still running: CloudFormation no longer waits for it`);
    }
    return undefined;
  }

  private finish(target: Target): number {
    this.clearBar();
    const build = this.build;
    const now = this.clock.now();
    const held = target.resourceStatus === 'CREATE_COMPLETE' || target.resourceStatus === 'UPDATE_COMPLETE';
    const rolledBack = /ROLLBACK/.test(target.stackStatus ?? '') || Boolean(target.cancelled);
    if (build) {
      this.line(`stages: ${build.durations(now).map((d) => `${d.stage} ${formatDuration(d.ms)}`).join(', ')}`);
    }
    if (build?.outcome === 'complete' && (held || target.logicalId === undefined) && !rolledBack) {
      this.line(`complete in ${formatDuration((build.reached.find((s) => s.stage === 'complete')?.at ?? now) - (build.startedAt ?? target.since))}: AMI ${build.imageId ?? '?'} (snapshot ${build.snapshotId ?? '?'})`);
      return 0;
    }
    if (!build && held && !rolledBack) {
      this.line(`${target.logicalId} is ${target.resourceStatus}: no new build was needed (an update of tags or settings only)`);
      return 0;
    }
    if (!build && target.resourceStatus === 'DELETE_COMPLETE' && !/ROLLBACK/.test(target.stackStatus ?? '')) {
      // The stack (or the resource) was deleted on purpose: its build's removal is the outcome.
      this.line(`${target.logicalId} is DELETE_COMPLETE: its build is removed`);
      return 0;
    }
    if (build?.outcome === 'failed') {
      this.line(`failed after ${formatDuration((build.reached.find((s) => s.stage === 'failed')?.at ?? now) - (build.startedAt ?? target.since))}: ${build.reason ?? target.resourceReason ?? 'no reason logged'}`);
    } else if (build?.outcome === 'complete') {
      this.line(`build ${build.buildId} completed, but CloudFormation does not hold it (${target.logicalId} ${target.resourceStatus}); 'builds ${target.stack?.stackName}' lists what it left`);
    }
    if (rolledBack) {
      this.line(`the stack rolled back (${target.stackStatus})${this.rollbackReason ? `: ${this.rollbackReason}` : ''}`);
    } else if (target.logicalId !== undefined && !held) {
      this.line(`${target.logicalId} is ${target.resourceStatus}${target.resourceReason ? `: ${firstLine(target.resourceReason)}` : ''}`);
    }
    if (build) {
      const stream = build.failedIn ?? this.lastStream;
      this.line(`full log: log group ${target.logGroup}${stream ? `, stream ${stream}` : ''} (aws logs filter-log-events --log-group-name ${target.logGroup} --filter-pattern '"${build.buildId}"')`);
    }
    return 1;
  }

  private rollbackReason?: string;
  private lastStream?: string;

  private takeEvent(target: Target, event: StackEvent): void {
    const isStack = event.ResourceType === 'AWS::CloudFormation::Stack';
    const isOurs = target.logicalId !== undefined ? event.LogicalResourceId === target.logicalId : event.PhysicalResourceId === target.buildId;
    if (!isStack && !isOurs) {
      if (/_FAILED$/.test(event.ResourceStatus ?? '') && this.rollbackReason === undefined) {
        this.rollbackReason = `${event.LogicalResourceId} ${event.ResourceStatus}: ${firstLine(event.ResourceStatusReason)}`.trim();
      }
      return;
    }
    if (!isStack && isPreviousBuildRemoval(target, event)) {
      // An update's cleanup: CloudFormation deletes the build the resource held before; the resource holds the new one.
      this.event(event.Timestamp?.getTime() ?? this.clock.now(), `${event.LogicalResourceId} ${event.ResourceStatus} of the previous build ${event.PhysicalResourceId}`);
      return;
    }
    if (isStack) {
      target.stackStatus = event.ResourceStatus;
    } else {
      if (/^(CREATE|UPDATE)_COMPLETE$/.test(event.ResourceStatus ?? '') && isBuildId(event.PhysicalResourceId)) {
        target.heldBuildId = event.PhysicalResourceId;
      }
      target.resourceStatus = event.ResourceStatus;
      target.resourceReason = event.ResourceStatusReason ?? target.resourceReason;
      // CloudFormation cancels a custom resource's Create when another resource fails, and sends
      // it a Delete while the build still runs (observed behaviour, see docs/cli.md).
      if (/_FAILED$/.test(event.ResourceStatus ?? '') && /^Resource (creation|update) cancelled/.test(event.ResourceStatusReason ?? '')) {
        target.cancelled = true;
      }
    }
    const who = isStack ? `stack ${event.LogicalResourceId}` : event.LogicalResourceId;
    const note = !isStack && event.ResourceStatus === 'DELETE_IN_PROGRESS' && target.cancelled ? ' (a Delete while the build runs)' : '';
    this.event(event.Timestamp?.getTime() ?? this.clock.now(), `${who} ${event.ResourceStatus}${event.ResourceStatusReason ? `: ${firstLine(event.ResourceStatusReason)}` : ''}${note}`);
  }

  private takeLine(target: Target, line: StageLine, stream: string): void {
    const ours = target.logicalId !== undefined
      ? line.stackId === target.stack?.stackId && line.logicalId === target.logicalId
      : line.buildId === target.buildId;
    // A build of this operation starts after it (lines read from before it may be an earlier build's).
    if (line.stage === 'started' && ours && target.logicalId !== undefined && line.buildId !== target.buildId && line.at >= target.since - CLOCK_SKEW_MS) {
      target.buildId = line.buildId;
      this.build = new BuildProgress(line.buildId);
    }
    if (line.stage === 'delete-started' && ours && line.at >= target.since - CLOCK_SKEW_MS) {
      this.removing.add(line.buildId);
      const earlier = target.buildId !== undefined && line.buildId !== target.buildId;
      this.event(line.at, `the handler began removing build ${line.buildId}${earlier ? ' (an earlier build of the resource)' : ''}`);
      return;
    }
    if (line.stage === 'deleted' && this.removing.has(line.buildId)) {
      this.event(line.at, `build ${line.buildId} removed`);
      return;
    }
    if (line.buildId !== target.buildId || line.stage === 'deleted') {
      return;
    }
    this.build ??= new BuildProgress(line.buildId);
    const stageBefore = this.build.current;
    const reachedBefore = this.build.reached.length;
    this.lastStream = stream;
    if (this.build.add(line, stream)) {
      const newStage = this.build.reached.length !== reachedBefore || this.build.current !== stageBefore;
      this.showProgress(line.at, newStage);
    }
  }

  /** A change of the build: a line of its own in plain mode; in a terminal, a line per new stage and the bar. */
  private showProgress(at: number, newStage: boolean): void {
    const build = this.build!;
    const text = `${build.buildId} ${build.describe()}`;
    if (this.io.terminal) {
      if (newStage) {
        this.event(at, text);
      }
      return;
    }
    if (text !== this.lastShown) {
      this.lastShown = text;
      const left = build.estimateLeftMs(at);
      const elapsed = build.startedAt !== undefined ? `, ${formatDuration(at - build.startedAt)} in` : '';
      this.line(`${isoSeconds(at)}  ${text}${elapsed}${left !== undefined ? `, about ${formatDuration(left)} left` : ''}`);
    }
  }

  private event(at: number, text: string): void {
    if (this.io.terminal) {
      this.clearBar();
      this.io.stdout(`${isoSeconds(at).slice(11, 19)} ${text}\n`);
      this.drawBar();
    } else {
      this.line(`${isoSeconds(at)}  ${text}`);
    }
  }

  private line(text: string): void {
    this.clearBar();
    this.io.stdout(`${text}\n`);
  }

  private drawBar(): void {
    const build = this.build;
    if (!this.io.terminal || !build || build.outcome) {
      return;
    }
    const now = this.clock.now();
    const fraction = build.fraction(now);
    const filled = Math.round(fraction * BAR_WIDTH);
    const left = build.estimateLeftMs(now);
    const stageFor = formatDuration(now - (build.currentSince ?? now));
    const text = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${Math.round(fraction * 100)}% ${build.describe()} (${stageFor} in stage, ` +
      `${formatDuration(now - (build.startedAt ?? now))} in all${left !== undefined ? `, about ${formatDuration(left)} left` : ''})`;
    this.io.stdout(`\r\x1b[K${text.slice(0, Math.max(20, this.io.terminal.columns - 1))}`);
    this.barDrawn = true;
  }

  private clearBar(): void {
    if (this.barDrawn) {
      this.io.stdout('\r\x1b[K');
      this.barDrawn = false;
    }
  }

  /** The stack's events not shown yet, oldest first, from `since` on (DescribeStackEvents answers newest first, in pages). */
  private async stackEvents(stackId: string, since: number): Promise<StackEvent[]> {
    const fresh: StackEvent[] = [];
    let token: string | undefined;
    do {
      const page = await this.aws.cfn.send(new DescribeStackEventsCommand({ StackName: stackId, NextToken: token }));
      let older = false;
      for (const event of page.StackEvents ?? []) {
        if (this.seenEvents.has(event.EventId ?? '') || (event.Timestamp?.getTime() ?? 0) < since) {
          older = true;
          break;
        }
        fresh.push(event);
      }
      token = older ? undefined : page.NextToken;
    } while (token);
    for (const event of fresh) {
      this.seenEvents.add(event.EventId ?? '');
    }
    return fresh.reverse();
  }

  /** The handler's stage lines not read yet, oldest first. */
  private async stageLines(target: Target): Promise<{ line: StageLine; stream: string }[]> {
    const lines: { line: StageLine; stream: string; timestamp: number }[] = [];
    const startTime = Math.max(target.since - LOG_LOOKBACK_MS, this.lastLogTime - LOG_OVERLAP_MS);
    let token: string | undefined;
    do {
      const page = await this.aws.logs.send(new FilterLogEventsCommand({ logGroupName: target.logGroup, startTime, nextToken: token }));
      for (const event of page.events ?? []) {
        const key = event.eventId ?? `${event.logStreamName}/${event.timestamp}/${event.message}`;
        if (this.seenLines.has(key)) {
          continue;
        }
        this.seenLines.add(key);
        this.lastLogTime = Math.max(this.lastLogTime, event.timestamp ?? 0);
        const line = parseStageLine(event.message ?? '');
        if (line) {
          lines.push({ line, stream: event.logStreamName ?? '', timestamp: event.timestamp ?? 0 });
        }
      }
      token = page.nextToken;
    } while (token);
    return lines.sort((a, b) => a.line.at - b.line.at || a.timestamp - b.timestamp);
  }

  /** A stack that is not deploying: the outcome of the build CloudFormation holds, from its build record. */
  private async reportSettled(stack: StackView, resource: StackResource): Promise<number> {
    const buildId = resource.PhysicalResourceId;
    this.line(`stack ${stack.stackName} is ${stack.status}; ${resource.LogicalResourceId} is ${resource.ResourceStatus} (no deploy in progress)`);
    if (!isBuildId(buildId)) {
      return /_COMPLETE$/.test(resource.ResourceStatus ?? '') && !/ROLLBACK|DELETE/.test(stack.status) ? 0 : 1;
    }
    const images = (await this.aws.ec2.send(new DescribeImagesCommand({
      Owners: ['self'],
      Filters: [{ Name: `tag:${BUILD_ID_TAG}`, Values: [buildId] }, { Name: `tag:${RESOURCE_TAG}`, Values: [resource.LogicalResourceId ?? ''] }],
    }))).Images ?? [];
    const record = images.map((image) => recordOf(image.Tags)).find((r) => r);
    if (!record) {
      this.line(`build ${buildId}: no build record found on its AMI`);
      return 1;
    }
    const stages = record.stages.map((s) => `${s.stage} +${formatDuration(s.at - record.startedAt)}`).join(', ');
    this.line(`build ${buildId} ${record.outcome} (recorded): AMI ${record.imageId ?? '?'}, snapshot ${record.snapshotId ?? '?'}; ${stages}`);
    return record.outcome === 'complete' && /_COMPLETE$/.test(stack.status) && !/ROLLBACK/.test(stack.status) ? 0 : 1;
  }
}

/** A Delete of a build id other than the one the resource now holds: the cleanup of an update that replaced it. */
function isPreviousBuildRemoval(target: Target, event: StackEvent): boolean {
  return /^DELETE_/.test(event.ResourceStatus ?? '') && target.heldBuildId !== undefined
    && isBuildId(event.PhysicalResourceId) && event.PhysicalResourceId !== target.heldBuildId;
}

/** A reason's first line: the provider framework appends the handler's log group and a stack trace to it. */
function firstLine(reason: string | undefined): string {
  return (reason ?? '').split('\n')[0];
}

function requireLogGroup(stack: StackView, resources: readonly StackResource[]): string {
  const logGroup = handlerLogGroup(resources);
  if (!logGroup) {
    throw new UsageError(`stack ${stack.stackName} has no handler log group of mirage-unikernel-ami (HandlerLogs); is it deployed with this release?`);
  }
  return logGroup;
}
