/**
 * Retry of AWS calls on throttling and server errors, with exponential backoff and full jitter.
 *
 * The SDK already retries each call a few times within about a second; EC2's request-rate buckets
 * (RequestLimitExceeded) refill over seconds, so a build that launches, tags and polls many
 * resources needs this slower second layer.
 */
import { clock, invocationTimeLeft } from './clock';

export interface RetryOptions {
  /** Attempts in total, the first included. @default 10 */
  readonly attempts?: number;
  /** Upper bound of the first retry's delay. @default 250 */
  readonly baseDelayMs?: number;
  /** Upper bound of any delay. @default 10000 */
  readonly maxDelayMs?: number;
  /** No retry starts once this long has passed since the first attempt. @default no limit but `attempts` */
  readonly maxElapsedMs?: number;
  /** Which errors are worth another attempt. @default isRetryableError */
  readonly isRetryable?: (err: unknown) => boolean;
  /** How to wait; tests inject a recorder. @default the handler's clock (clock.ts) */
  readonly sleep?: (ms: number) => Promise<void>;
}

const RETRYABLE_ERROR_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  // EBS direct APIs ("Errors" in their API reference): HTTP 400, "You have reached the limit for
  // concurrent API requests"; the limit frees as requests in flight end. (ConflictException is not
  // here: it answers a client token reused with other parameters, which another attempt repeats.)
  'ConcurrentLimitExceededException',
  'ServiceUnavailable',
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'InternalServerException',
  // The SDK's name for a request whose response did not come within its requestTimeout (clients.ts).
  'TimeoutError',
]);

const TRANSIENT_NETWORK_CODES = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNREFUSED']);

interface AwsErrorShape {
  readonly name?: string;
  readonly code?: string;
  readonly $retryable?: unknown;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

/** Throttling, server-side (5xx) and transient network errors; everything else is the caller's problem. */
export function isRetryableError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) {
    return false;
  }
  const e = err as AwsErrorShape;
  const status = e.$metadata?.httpStatusCode ?? 0;
  return (
    RETRYABLE_ERROR_NAMES.has(e.name ?? '') ||
    Boolean(e.$retryable) ||
    status >= 500 ||
    status === 429 ||
    TRANSIENT_NETWORK_CODES.has(e.code ?? '')
  );
}

/**
 * Runs `fn`, retrying retryable errors up to `attempts` times in total. The n-th retry waits a
 * random time in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))] ("full jitter", which spreads
 * concurrent callers best). The last error is rethrown with `label` and the attempt count added.
 * No wait may outlast the Lambda invocation (clock.ts): then the last error goes through at once.
 */
export async function withRetry<T>(label: string, fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 10;
  const baseDelayMs = options.baseDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  const isRetryable = options.isRetryable ?? isRetryableError;
  const sleep = options.sleep ?? ((ms: number) => clock().sleep(ms));
  const startedAt = clock().now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const outOfTime = options.maxElapsedMs !== undefined && clock().now() - startedAt >= options.maxElapsedMs;
      if (attempt >= attempts || outOfTime || !isRetryable(err)) {
        throw annotate(err, label, attempt);
      }
      const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      const delay = Math.floor(clock().random() * ceiling);
      if (delay >= invocationTimeLeft()) {
        throw annotate(err, label, attempt);
      }
      await sleep(delay);
    }
  }
}

/** Adds which call failed to the error's message, keeping its name (callers test `name`, e.g. NotFound). */
function annotate(err: unknown, label: string, attempts: number): unknown {
  if (err instanceof Error) {
    const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
    err.message = `${label} failed${tries}: ${err.message}`;
  }
  return err;
}

const ACCESS_DENIED_NAMES = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'Client.UnauthorizedOperation']);

/** The caller's policies do not allow the request (EC2, SSM, S3 and EBS name it differently). */
export function isAccessDenied(err: unknown): boolean {
  return ACCESS_DENIED_NAMES.has((err as { name?: string } | undefined)?.name ?? '');
}

/** How long after a build creates a resource IAM may still not see the resource's tags. */
export const NEW_RESOURCE_AUTHORIZATION_WINDOW_MS = 2 * 60_000;

/**
 * Retry options for the next call on a resource the build created moments ago. The handler's role
 * is allowed to act on the build's resources by their tags (ec2:ResourceTag, ssm:resourceTag);
 * right after the create call, authorization may not see the new resource's tags yet and answer
 * AccessDenied. Only for such a call, and only while the resource is younger than
 * NEW_RESOURCE_AUTHORIZATION_WINDOW_MS, AccessDenied is retried, for about half a minute at most;
 * everywhere else AccessDenied fails at once, since it means a policy is missing.
 * @param createdAt when the resource was created (clock time)
 */
export function afterCreateRetry(createdAt: number | undefined, now: number): RetryOptions {
  const young = createdAt !== undefined && now - createdAt < NEW_RESOURCE_AUTHORIZATION_WINDOW_MS;
  return young
    ? { attempts: 8, baseDelayMs: 1000, maxDelayMs: 8000, isRetryable: (err) => isRetryableError(err) || isAccessDenied(err) }
    : {};
}
