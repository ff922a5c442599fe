/** What every command shares: where it writes, and the error type for a user's mistake. */
import type { EC2Client } from '@aws-sdk/client-ec2';

/** Where the command writes; tests pass collectors. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Creates the EC2 client for `console`; tests pass one pointed at a mock. */
  readonly ec2Client?: (region?: string) => EC2Client;
}

/** A mistake in how the command was called or in its input: reported as one line, no stack trace. */
export class UsageError extends Error {}
