/**
 * The stages of a build as the handler logs them, for `mirage-unikernel-ami watch` (lib/cli): one
 * structured JSON line per stage transition, beside the step lines of log.ts, in the handlers' log
 * group. The line is the contract between the handler and the CLI, so both import this module.
 *
 *     {"step":"stage","stage":"snapshot","buildId":"mua-0123456789abcdef","at":1796000012000,"snapshotId":"snap-0abc","progressPercent":40,"elapsedMs":812}
 *
 * - `stage`: one of BUILD_STAGES; `at`: when it was reached, in ms since the epoch.
 * - `started` and `delete-started` carry `stackId`, `logicalId`, `requestType` and `strategy`: the
 *   build id is a digest of the request (build-id.ts), and CloudFormation shows no physical id while
 *   a custom resource is in progress, so these are how a reader finds the build of a stack's resource.
 * - `staged` and `blocks-written` carry `blocks` (512 KiB blocks) and, when known, `totalBlocks`;
 *   `snapshot` carries `snapshotId` and `progressPercent`; `failed` carries `reason`.
 * A stage may be logged again (a repeated delivery, another isComplete round): readers keep the first
 * time of each stage and the latest fields.
 */

/**
 * In the order a build passes them. The helper strategy: started, staged, helper-launched,
 * agent-online, blocks-written (all at once: the helper script reports when it is done), verified,
 * snapshot, image-registered, complete. The EBS-direct strategy: started, blocks-written (as they are
 * sent), verified, snapshot, image-registered, complete. Either may end in failed. A Delete of the
 * resource: delete-started, then deleted.
 */
export const BUILD_STAGES = [
  'started',
  'staged',
  'helper-launched',
  'agent-online',
  'blocks-written',
  'verified',
  'snapshot',
  'image-registered',
  'complete',
  'failed',
  'delete-started',
  'deleted',
] as const;

export type BuildStageName = (typeof BUILD_STAGES)[number];

/** The `step` of a stage line. */
export const STAGE_STEP = 'stage';

/** The fields a stage line may carry besides stage, buildId, at and elapsedMs. */
export interface StageFields {
  readonly stackId?: string;
  readonly logicalId?: string;
  readonly requestType?: string;
  readonly strategy?: string;
  readonly instanceId?: string;
  readonly commandId?: string;
  readonly snapshotId?: string;
  readonly imageId?: string;
  readonly blocks?: number;
  readonly totalBlocks?: number;
  readonly progressPercent?: number;
  readonly reason?: string;
}

/** A stage line as read back. */
export interface StageLine extends StageFields {
  readonly stage: BuildStageName;
  readonly buildId: string;
  readonly at: number;
}

/** A failure reason in a stage line stays short: the full message is in the step lines and in CloudFormation's event. */
export const STAGE_REASON_MAX_CHARS = 500;

/** The snapshot's progress in percent from EC2's `Progress` ("40%"); undefined when EC2 gives none. */
export function progressPercentOf(progress: string | undefined): number | undefined {
  const match = /^(\d{1,3})%$/.exec(progress ?? '');
  return match ? Number(match[1]) : undefined;
}

/**
 * The stage line in a log message, or undefined. Lambda's text format prefixes each line with the
 * time, the request id and the level ("2026-01-01T00:00:00.000Z\t<request id>\tINFO\t{...}"); its
 * JSON format puts the line in `message`. Both are read.
 */
export function parseStageLine(message: string): StageLine | undefined {
  const start = message.indexOf('{');
  if (start < 0) {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(message.slice(start));
  } catch {
    return undefined;
  }
  const object = parsed as { step?: unknown; stage?: unknown; buildId?: unknown; at?: unknown; message?: unknown };
  if (typeof object?.message === 'string' && object.step === undefined) {
    return parseStageLine(object.message);
  }
  if (object?.step !== STAGE_STEP || typeof object.buildId !== 'string' || typeof object.at !== 'number'
    || !(BUILD_STAGES as readonly unknown[]).includes(object.stage)) {
    return undefined;
  }
  return parsed as StageLine;
}
