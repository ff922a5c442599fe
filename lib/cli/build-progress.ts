/**
 * A build's progress as `watch` shows it, from the handler's stage lines
 * (lib/unikernel-ami/handler/stages.ts): the stage it is in, how long each stage took, how far it
 * is, and an estimate of what is left.
 *
 * The estimate adds, for the stages still to come, typical durations (TYPICAL_STAGE_MS) and, for the
 * snapshot, extrapolates the progress EC2 reports. The typical durations are assumptions (the order
 * of magnitude of EC2's state times: an instance boots and its SSM agent registers in a minute or
 * two, an AMI is available a minute or so after RegisterImage); the output says "about".
 */
import { BuildStrategyKind } from '../unikernel-ami/types';
import { BuildStageName, StageLine } from '../unikernel-ami/handler/stages';

/** The stages each strategy passes, in order (stages.ts). */
export const STAGE_SEQUENCE: Record<string, readonly BuildStageName[]> = {
  [BuildStrategyKind.HELPER_INSTANCE]: ['started', 'staged', 'helper-launched', 'agent-online', 'verified', 'snapshot', 'image-registered', 'complete'],
  [BuildStrategyKind.EBS_DIRECT]: ['started', 'blocks-written', 'verified', 'snapshot', 'image-registered', 'complete'],
};

/** How long the step after each stage typically takes, until the next stage (an assumption, see the file comment). */
const TYPICAL_STAGE_MS: Partial<Record<BuildStageName, number>> = {
  'started': 15_000,
  'staged': 10_000,
  'helper-launched': 120_000,
  'agent-online': 60_000,
  'blocks-written': 10_000,
  'verified': 10_000,
  'snapshot': 120_000,
  'image-registered': 60_000,
};

function blocks(count: number | undefined): string {
  return count === 1 ? '1 block' : `${count ?? '?'} blocks`;
}

/** What the build does while it is in a stage, for people. */
function activity(stage: BuildStageName, strategy: string, state: BuildProgress): string {
  switch (stage) {
    case 'started':
      return strategy === BuildStrategyKind.EBS_DIRECT ? 'writing blocks' : 'staging the disk image';
    case 'staged':
      return `staged ${blocks(state.totalBlocks)}, launching the helper`;
    case 'helper-launched':
      return `helper ${state.instanceId ?? ''} launched, waiting for its SSM agent`.replace('  ', ' ');
    case 'agent-online':
      return 'agent online, the helper writes the blocks';
    case 'blocks-written':
      return `blocks written ${state.blocks ?? 0}${state.totalBlocks !== undefined ? `/${state.totalBlocks}` : ''}`;
    case 'verified':
      return `blocks written ${state.totalBlocks ?? state.blocks ?? '?'}/${state.totalBlocks ?? state.blocks ?? '?'}, verified; snapshot starting`;
    case 'snapshot':
      return `snapshot ${state.snapshotPercent ?? 0}%`;
    case 'image-registered':
      return `image registered ${state.imageId ?? ''}, waiting for it to be available`.replace('  ', ' ');
    case 'complete':
      return 'complete';
    case 'failed':
      return 'failed';
    case 'delete-started':
      return 'removal started';
    case 'deleted':
      return 'removed';
  }
}

export interface StageTime {
  readonly stage: BuildStageName;
  readonly at: number;
}

/** What a build's stage lines say so far. */
export class BuildProgress {
  readonly reached: StageTime[] = [];
  strategy: string = BuildStrategyKind.HELPER_INSTANCE;
  startedAt?: number;
  blocks?: number;
  totalBlocks?: number;
  snapshotPercent?: number;
  snapshotAt?: number;
  instanceId?: string;
  snapshotId?: string;
  imageId?: string;
  reason?: string;
  /** The log stream of the line that said the build failed (where the rest of its log is). */
  failedIn?: string;

  constructor(readonly buildId: string) {}

  /**
   * Takes one stage line of this build. A stage seen again keeps its first time; fields take their
   * latest value.
   * @returns whether anything that `watch` shows changed
   */
  add(line: StageLine, logStream?: string): boolean {
    const before = this.signature();
    if (line.strategy) {
      this.strategy = line.strategy;
    }
    if (line.stage === 'started') {
      this.startedAt ??= line.at;
    }
    if (!this.reached.some((s) => s.stage === line.stage)) {
      this.reached.push({ stage: line.stage, at: line.at });
      this.reached.sort((a, b) => a.at - b.at);
    }
    this.blocks = line.blocks ?? this.blocks;
    this.totalBlocks = line.totalBlocks ?? this.totalBlocks;
    this.instanceId = line.instanceId ?? this.instanceId;
    this.snapshotId = line.snapshotId ?? this.snapshotId;
    this.imageId = line.imageId ?? this.imageId;
    if (line.stage === 'snapshot' && line.progressPercent !== undefined) {
      this.snapshotPercent = Math.max(this.snapshotPercent ?? 0, line.progressPercent);
      this.snapshotAt ??= line.at;
    }
    if (line.stage === 'failed') {
      this.reason = line.reason;
      this.failedIn = logStream;
    }
    return this.signature() !== before;
  }

  /** complete or failed, once a line says so. */
  get outcome(): 'complete' | 'failed' | undefined {
    if (this.has('failed')) {
      return 'failed';
    }
    return this.has('complete') ? 'complete' : undefined;
  }

  has(stage: BuildStageName): boolean {
    return this.reached.some((s) => s.stage === stage);
  }

  /** The furthest stage of the strategy's sequence reached (failed once failed). */
  get current(): BuildStageName {
    if (this.has('failed')) {
      return 'failed';
    }
    const sequence = STAGE_SEQUENCE[this.strategy] ?? STAGE_SEQUENCE[BuildStrategyKind.HELPER_INSTANCE];
    let furthest: BuildStageName = 'started';
    for (const stage of sequence) {
      if (this.has(stage)) {
        furthest = stage;
      }
    }
    return furthest;
  }

  /** When the current stage was reached. */
  get currentSince(): number | undefined {
    return this.reached.find((s) => s.stage === this.current)?.at;
  }

  /** What the build is doing now, in words. */
  describe(): string {
    return activity(this.current, this.strategy, this);
  }

  /** How long each stage reached so far lasted (until the next one, or until `now` for the current one). */
  durations(now: number): { stage: BuildStageName; ms: number }[] {
    return this.reached.map((s, i) => ({ stage: s.stage, ms: (this.reached[i + 1]?.at ?? (this.outcome ? s.at : now)) - s.at }));
  }

  /** How far the build is, from 0 to 1, by the typical durations of its stages. */
  fraction(now: number): number {
    if (this.outcome === 'complete') {
      return 1;
    }
    const sequence = STAGE_SEQUENCE[this.strategy] ?? [];
    const total = sequence.reduce((sum, stage) => sum + (TYPICAL_STAGE_MS[stage] ?? 0), 0);
    const index = sequence.indexOf(this.current);
    if (total === 0 || index < 0) {
      return 0;
    }
    const done = sequence.slice(0, index).reduce((sum, stage) => sum + (TYPICAL_STAGE_MS[stage] ?? 0), 0);
    const typical = TYPICAL_STAGE_MS[this.current] ?? 0;
    const inStage = this.current === 'snapshot' && this.snapshotPercent !== undefined
      ? typical * this.snapshotPercent / 100
      : Math.min(typical * 0.9, now - (this.currentSince ?? now));
    return Math.min(1, (done + inStage) / total);
  }

  /** An estimate of the time left (see the file comment); undefined once the build has an outcome. */
  estimateLeftMs(now: number): number | undefined {
    if (this.outcome) {
      return undefined;
    }
    const sequence = STAGE_SEQUENCE[this.strategy] ?? [];
    const index = sequence.indexOf(this.current);
    const later = sequence.slice(index + 1).reduce((sum, stage) => sum + (TYPICAL_STAGE_MS[stage] ?? 0), 0);
    const inStage = now - (this.currentSince ?? now);
    let current = Math.max(0, (TYPICAL_STAGE_MS[this.current] ?? 0) - inStage);
    if (this.current === 'snapshot' && this.snapshotPercent && this.snapshotPercent > 0 && this.snapshotAt !== undefined) {
      // EC2's progress so far, extrapolated.
      current = (now - this.snapshotAt) * (100 - this.snapshotPercent) / this.snapshotPercent;
    }
    return current + later;
  }

  private signature(): string {
    return [this.reached.map((s) => s.stage).join(','), this.blocks, this.totalBlocks, this.snapshotPercent, this.imageId].join('|');
  }
}
