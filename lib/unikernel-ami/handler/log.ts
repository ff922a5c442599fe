/**
 * One structured JSON line per step, for CloudWatch Logs Insights: `{step, buildId, ...ids, elapsedMs}`.
 * Callers pass only the ids they choose; the event (with its presigned ResponseURL) is never logged.
 */
import { clock } from './clock';
import { BuildStageName, STAGE_REASON_MAX_CHARS, STAGE_STEP, StageFields } from './stages';

export type LogFields = { readonly [key: string]: string | number | boolean | undefined };

/** Logs the steps of one handler invocation; elapsedMs counts from the logger's creation. */
export class StepLog {
  private readonly startedAt: number;

  constructor(
    private readonly buildId: string,
    private readonly now: () => number = () => clock().now(),
    private readonly write: (line: string) => void = (line) => console.log(line),
  ) {
    this.startedAt = now();
  }

  step(step: string, fields: LogFields = {}): void {
    this.write(JSON.stringify({ step, buildId: this.buildId, ...fields, elapsedMs: this.now() - this.startedAt }));
  }

  /** A stage transition of the build (stages.ts), with the time it was reached, for `watch`. */
  stage(stage: BuildStageName, fields: StageFields = {}): void {
    const reason = fields.reason?.slice(0, STAGE_REASON_MAX_CHARS);
    this.step(STAGE_STEP, { stage, at: this.now(), ...fields, ...(reason !== undefined ? { reason } : {}) });
  }
}
