/**
 * How the construct reports a mistake in what it was given (a missing or unbootable kernel file, a
 * region without PV-GRUB, a bad prop): one line naming the construct path, without a stack trace.
 *
 * An error thrown while a CDK app is constructed is uncaught, and Node prints its stack. For a mistake
 * in the user's input those frames are this package's compiled internals, which tell the user nothing
 * they can act on; the construct path and the message do. aws-cdk-lib's own ValidationError does the
 * same job but is not public API (its constructor changed between releases), so this package cannot
 * rely on it across the aws-cdk-lib versions it supports. Set CDK_DEBUG=true to keep the stack.
 */
import { IConstruct } from 'constructs';

/** A mistake in the props or inputs of a construct of this package. */
export class ValidationError extends Error {
  /** Path of the construct that was given the bad input, if one was at hand when it was found. */
  declare public readonly constructPath?: string;

  constructor(message: string, scope?: IConstruct) {
    // The app itself has the empty path: nothing to name.
    const constructPath = scope?.node.path || undefined;
    super(constructPath === undefined ? message : `${constructPath}: ${message}`);
    // Not enumerable, so Node's report of an uncaught error does not append them as `{ ... }`.
    Object.defineProperty(this, 'name', { value: 'ValidationError', writable: true, configurable: true });
    Object.defineProperty(this, 'constructPath', { value: constructPath });
    if (!debugMode()) {
      // Node prints an uncaught error's `stack`; "ValidationError at Stack/Construct: ..." then reads as
      // one sentence (and Node's inspector leaves a stack that does not start "Name:" as it is).
      Object.defineProperty(this, 'stack', {
        value: constructPath === undefined ? `${this.name}: ${message}` : `${this.name} at ${this.message}`,
        writable: true,
        configurable: true,
      });
    }
  }
}

/** The error to throw for bad input given to `scope` (or to a factory method, when there is no construct yet). */
export function validationError(scope: IConstruct | undefined, message: string): ValidationError {
  return new ValidationError(message, scope);
}

/**
 * Runs a check of the disk-image or kernel-inspection modules (whose errors are all about their input)
 * and reports what it throws against `scope`, optionally with `context` around its message.
 */
export function checkInput<T>(scope: IConstruct, check: () => T, context: (message: string) => string = (message) => message): T {
  try {
    return check();
  } catch (err) {
    throw validationError(scope, context((err as Error).message));
  }
}

/** CDK_DEBUG is the variable aws-cdk-lib reads to keep stack traces in its own metadata. */
function debugMode(): boolean {
  return ['true', '1'].includes((process.env.CDK_DEBUG ?? '').toLowerCase());
}
