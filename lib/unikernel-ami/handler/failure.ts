/**
 * How a failed build is reported. CloudFormation refuses a custom-resource response over 4,096
 * bytes ("Response object is too long"), which turns a clear failure into an opaque one; the CDK
 * provider framework puts the error's message in the response's Reason together with the stack
 * trace, whose first line repeats the message. So the message is kept to one line and
 * MAX_FAILURE_MESSAGE_BYTES, and always ends with the build id, so that the user can find the
 * build's log lines and resources.
 */

/** With the message twice, ten stack frames and the response's other fields, this stays below 3 kB. */
export const MAX_FAILURE_MESSAGE_BYTES = 700;

/** An error the handler has already worded for the user; its message is final. */
export class BuildFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildFailure';
  }
}

/** Collapses whitespace (newlines included) and cuts `text` to at most `maxBytes` of UTF-8, marking the cut. */
export function oneLine(text: string, maxBytes: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (Buffer.byteLength(flat, 'utf8') <= maxBytes) {
    return flat;
  }
  let cut = flat.slice(0, maxBytes);
  while (Buffer.byteLength(cut, 'utf8') > maxBytes - 3) {
    cut = cut.slice(0, -1);
  }
  return `${cut}...`;
}

/** The last `maxChars` characters of a command's output, on one line (the end of stderr says why). */
export function outputTail(output: string | undefined, maxChars: number): string {
  const flat = (output ?? '').replace(/\s+/g, ' ').trim();
  return flat.length <= maxChars ? flat : `...${flat.slice(-maxChars)}`;
}

/** The message CloudFormation shows: the reason, cut to fit, then the build id. */
export function failureMessage(buildId: string, reason: string): string {
  const suffix = ` (build ${buildId})`;
  const withId = reason.includes(buildId) ? reason : `${reason.replace(/[.\s]+$/, '')}.${suffix}`;
  if (Buffer.byteLength(withId.replace(/\s+/g, ' '), 'utf8') <= MAX_FAILURE_MESSAGE_BYTES) {
    return oneLine(withId, MAX_FAILURE_MESSAGE_BYTES);
  }
  return `${oneLine(reason, MAX_FAILURE_MESSAGE_BYTES - Buffer.byteLength(suffix, 'utf8'))}${suffix}`;
}
