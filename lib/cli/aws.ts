/** What the commands that call AWS share: the region, credentials, and the time they wait on. */
import { UsageError } from './io';

/** A client whose region the SDK resolves (from --region, AWS_REGION or the profile). */
interface RegionalClient {
  readonly config: { region: () => Promise<string> };
}

/**
 * The client's region, from --region or the SDK's own chain (AWS_REGION, the profile's region); the
 * SDK would otherwise fail the call with a bare "Region is missing".
 */
export async function requireRegion(client: RegionalClient, command: string, what: string): Promise<void> {
  let region: string | undefined;
  try {
    region = await client.config.region();
  } catch {
    region = undefined;
  }
  if (!region) {
    throw new UsageError(`${command} needs ${what}: pass --region REGION (e.g. --region eu-west-1) or set AWS_REGION`);
  }
}

/**
 * The SDK found no credentials: say what to set instead of the SDK's CredentialsProviderError
 * ("Could not load credentials from any providers").
 */
export async function withCredentials<T>(command: string, allowed: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if ((err as Error | undefined)?.name === 'CredentialsProviderError') {
      throw new UsageError(
        `${command} needs AWS credentials allowed ${allowed}: set AWS_PROFILE to a profile of ~/.aws/config ` +
          "(after 'aws configure' or 'aws sso login'), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
      );
    }
    throw err;
  }
}

/** The time a command reads and waits on: the real one, or a test's simulated clock. */
export interface CliClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const REAL_CLI_CLOCK: CliClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
};

/** "4m05s", "52s", "1h02m": an elapsed time as people read it. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) {
    return `${seconds}s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** An ISO time without milliseconds, for plain output lines. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
