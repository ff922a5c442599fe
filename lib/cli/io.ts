/** What every command shares: where it writes, and how a user's mistake is reported. */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { CliClock } from './aws';

/** Where the command writes; tests pass collectors. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Creates the EC2 client for `console`; tests pass one pointed at a mock. */
  readonly ec2Client?: (region?: string) => EC2Client;
  /** The time `watch` reads and waits on. @default the real clock */
  readonly clock?: CliClock;
  /**
   * Whether stdout is a terminal, and its width: `watch` then draws a progress bar in place;
   * otherwise it writes plain timestamped lines (CI logs). @default plain lines
   */
  readonly terminal?: { readonly columns: number };
}

/** A mistake in how the command was called or in its input: reported as one line, no stack trace. */
export class UsageError extends Error {}

/** A failed file system call of Node: it names the call and the path. */
export interface FileSystemError extends Error {
  readonly code: string;
  readonly syscall: string;
  readonly path: string;
}

/** By shape, not `instanceof Error`: Node's own errors come from another realm under jest's vm contexts. */
export function isFileSystemError(err: unknown): err is FileSystemError {
  const { code, syscall, path } = (typeof err === 'object' && err !== null ? err : {}) as Partial<FileSystemError>;
  return typeof code === 'string' && typeof syscall === 'string' && typeof path === 'string';
}

/**
 * Why a file could not be read or written, in words with the code: "no such file or directory (ENOENT)".
 * Node's message is "ENOENT: no such file or directory, open '/path'"; the path is said by the caller.
 */
export function fileErrorReason(err: unknown): string {
  const { code, message } = (err ?? {}) as Partial<NodeJS.ErrnoException>;
  const words = /^E[A-Z0-9]+: ([^,]+)/.exec(message ?? '')?.[1];
  if (code !== undefined && words !== undefined) {
    return `${words} (${code})`;
  }
  return code ?? message ?? String(err);
}
