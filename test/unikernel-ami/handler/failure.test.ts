/**
 * How a failed build is worded for CloudFormation (failure.ts): one line, cut to a byte budget that
 * keeps the custom-resource response under CloudFormation's 4,096 bytes, ending with the build id.
 * (A real failure with a 6 kB AWS error through the provider framework is in convergence.test.ts,
 * issue 11 item 7; these unit tests load nothing else, which keeps each mutant's run short.)
 */
import { BuildFailure, failureMessage, MAX_FAILURE_MESSAGE_BYTES, oneLine, outputTail } from '../../../lib/unikernel-ami/handler/failure';

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

describe('oneLine', () => {
  test('collapses every run of whitespace, newlines included, to one space and trims the ends', () => {
    expect(oneLine('  first line\n\n\tsecond   line \r\n', 100)).toBe('first line second line');
  });

  test('text of exactly the budget is kept whole, without a cut mark', () => {
    const text = 'a'.repeat(50);
    expect(oneLine(text, 50)).toBe(text);
  });

  test('longer text is cut to the budget in bytes, the cut marked with three dots', () => {
    const cut = oneLine('b'.repeat(51), 50);
    expect(cut).toBe(`${'b'.repeat(47)}...`);
    expect(bytes(cut)).toBe(50);
  });

  test('the budget counts UTF-8 bytes, not characters: multi-byte text is cut shorter, never past the budget', () => {
    // 'é' is two bytes: 30 of them are 60 bytes, over a 50-byte budget though only 30 characters.
    const cut = oneLine('é'.repeat(30), 50);
    expect(cut).toBe(`${'é'.repeat(23)}...`);
    expect(bytes(cut)).toBeLessThanOrEqual(50);
  });
});

describe('outputTail', () => {
  test('no output is an empty string', () => {
    expect(outputTail(undefined, 10)).toBe('');
  });

  test('output of exactly the budget is kept whole, on one line', () => {
    expect(outputTail(' 12345 \n\t67890 ', 11)).toBe('12345 67890');
  });

  test('longer output keeps its end (where stderr says why), marked as cut', () => {
    expect(outputTail('the start is noise\nthe end says why', 16)).toBe('...the end says why');
  });
});

describe('failureMessage', () => {
  const BUILD = 'b-0123456789abcdef';

  test('the reason on one line, its final full stop and spaces replaced by one full stop, then the build id', () => {
    expect(failureMessage(BUILD, 'EC2 refused the launch.  \n')).toBe(`EC2 refused the launch. (build ${BUILD})`);
    expect(failureMessage(BUILD, 'EC2 refused\nthe launch')).toBe(`EC2 refused the launch. (build ${BUILD})`);
  });

  test('a reason that already names the build is not given the id twice', () => {
    const reason = `ec2:RunInstances launched no instance for build ${BUILD}.`;
    expect(failureMessage(BUILD, reason)).toBe(reason);
  });

  test('a reason of many kilobytes is cut to MAX_FAILURE_MESSAGE_BYTES and still ends with the build id', () => {
    const message = failureMessage(BUILD, `${'Encoded authorization failure message: '.repeat(300)}`);
    expect(bytes(message)).toBeLessThanOrEqual(MAX_FAILURE_MESSAGE_BYTES);
    expect(bytes(message)).toBeGreaterThan(MAX_FAILURE_MESSAGE_BYTES - 10);
    expect(message).toMatch(new RegExp(`\\.\\.\\. \\(build ${BUILD}\\)$`));
  });

  test('a reason just over the budget once on one line is cut, and the build id is kept whole at the end', () => {
    // Words and single spaces: over the budget with its spaces, under it without them.
    const reason = 'ab '.repeat(Math.ceil(MAX_FAILURE_MESSAGE_BYTES / 3));
    const message = failureMessage(BUILD, reason);
    expect(bytes(message)).toBeLessThanOrEqual(MAX_FAILURE_MESSAGE_BYTES);
    expect(message).toMatch(new RegExp(`\\.\\.\\. \\(build ${BUILD}\\)$`));
  });

  test('a long reason that names the build is cut to the budget too', () => {
    const message = failureMessage(BUILD, `build ${BUILD}: ${'x'.repeat(5000)}`);
    expect(bytes(message)).toBeLessThanOrEqual(MAX_FAILURE_MESSAGE_BYTES);
    expect(message).toMatch(new RegExp(`\\.\\.\\. \\(build ${BUILD}\\)$`));
  });

  test('a message of exactly the budget, reason, full stop and build id, is kept whole', () => {
    const suffix = ` (build ${BUILD})`;
    const reason = 'r'.repeat(MAX_FAILURE_MESSAGE_BYTES - bytes(suffix) - 1);
    expect(failureMessage(BUILD, reason)).toBe(`${reason}.${suffix}`);
  });

  test('the budget is measured on one line: a reason that fits once its whitespace is collapsed is kept whole', () => {
    // 100 words with six spaces after each: 1,000 bytes as given, 499 on one line.
    const reason = 'word      '.repeat(100);
    expect(bytes(reason)).toBeGreaterThan(MAX_FAILURE_MESSAGE_BYTES);
    const message = failureMessage(BUILD, reason);
    expect(message).toBe(`${'word '.repeat(100).trim()}. (build ${BUILD})`);
  });
});

test('BuildFailure is an Error whose message is final and whose name says so', () => {
  const failure = new BuildFailure('worded for the user');
  expect(failure).toBeInstanceOf(Error);
  expect(failure.message).toBe('worded for the user');
  expect(failure.name).toBe('BuildFailure');
});
