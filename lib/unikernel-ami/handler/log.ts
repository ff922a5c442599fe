/**
 * One structured JSON line per step, for CloudWatch Logs Insights: `{step, buildId, ...ids, elapsedMs}`.
 * Callers pass only the ids they choose; the event (with its presigned ResponseURL) is never logged.
 */
import { clock } from './clock';

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
}
