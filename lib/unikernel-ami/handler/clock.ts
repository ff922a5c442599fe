/**
 * Time as the handler sees it, and the time left to the Lambda invocation that is running.
 *
 * Every wait of the handler goes through `clock().sleep`, every reading of the time through
 * `clock().now` and every jitter through `clock().random`, so that tests can run the handler on
 * simulated, repeatable time: hours of EC2 states and
 * retries cost no real time (the whole jest run shares two cores). In Lambda the clock is the real one.
 *
 * The invocation deadline is kept per invocation (AsyncLocalStorage), because a test may run many
 * builds at once in one process, each in its own simulated Lambda invocation.
 */
import { AsyncLocalStorage } from 'async_hooks';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
  /** A number in [0, 1) for the jitter of waits (tests make it repeatable). */
  random(): number;
}

export const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
  random: () => Math.random(),
};

let current: Clock = REAL_CLOCK;

/** The clock in use. */
export function clock(): Clock {
  return current;
}

/** Installs another clock (tests: simulated time); `undefined` restores the real one. */
export function setClock(replacement: Clock | undefined): void {
  current = replacement ?? REAL_CLOCK;
}

/** What the Lambda runtime passes as the handler's second argument, as far as the handler uses it. */
export interface InvocationContext {
  /** Milliseconds until Lambda stops this invocation. */
  getRemainingTimeInMillis(): number;
}

interface Invocation {
  /** Clock time after which this invocation must not start anything that waits. */
  readonly deadlineAt: number;
}

const invocations = new AsyncLocalStorage<Invocation>();

/**
 * Runs `work` as one Lambda invocation whose waits must end `marginMs` before Lambda's own limit,
 * so that the invocation can still report its outcome (and clean up) instead of being cut off.
 * Without a context (a direct call in a test), `defaultBudgetMs` stands for the Lambda timeout.
 */
export function runInvocation<T>(context: InvocationContext | undefined, defaultBudgetMs: number, marginMs: number, work: () => Promise<T>): Promise<T> {
  const remaining = context?.getRemainingTimeInMillis?.() ?? defaultBudgetMs;
  return invocations.run({ deadlineAt: clock().now() + remaining - marginMs }, work);
}

/** Milliseconds this invocation may still spend waiting; Infinity outside an invocation. */
export function invocationTimeLeft(): number {
  const invocation = invocations.getStore();
  return invocation ? invocation.deadlineAt - clock().now() : Infinity;
}
