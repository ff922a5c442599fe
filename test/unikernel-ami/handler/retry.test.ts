import { setClock } from '../../../lib/unikernel-ami/handler/clock';
import { isRetryableError, withRetry } from '../../../lib/unikernel-ami/handler/retry';

function awsError(name: string, httpStatusCode = 400): Error {
  return Object.assign(new Error(`${name} from AWS`), { name, $metadata: { httpStatusCode } });
}

/** A function that fails with the given errors in turn, then returns 'done'. */
function failingThenDone(errors: Error[]) {
  const calls = { count: 0 };
  const fn = async () => {
    const err = errors[calls.count++];
    if (err) {
      throw err;
    }
    return 'done';
  };
  return { fn, calls };
}

describe('withRetry', () => {
  let delays: number[];
  const sleep = async (ms: number) => {
    delays.push(ms);
  };
  beforeEach(() => {
    delays = [];
  });

  test.each(['ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'ConcurrentLimitExceededException'])('retries %s until the call succeeds', async (name) => {
    // GIVEN a call throttled twice
    const { fn, calls } = failingThenDone([awsError(name), awsError(name)]);
    // WHEN
    const result = await withRetry('ec2:DescribeVolumes', fn, { sleep });
    // THEN
    expect(result).toBe('done');
    expect(calls.count).toBe(3);
    expect(delays).toHaveLength(2);
  });

  test('retries server errors (5xx) and errors the SDK marks $retryable', async () => {
    const retryable = Object.assign(new Error('socket hang up'), { $retryable: {} });
    const { fn, calls } = failingThenDone([awsError('InternalError', 500), retryable]);
    await expect(withRetry('s3:PutObject', fn, { sleep })).resolves.toBe('done');
    expect(calls.count).toBe(3);
  });

  test('does not retry an EBS ConflictException (a client token reused with other parameters)', async () => {
    const { fn, calls } = failingThenDone([awsError('ConflictException', 409)]);
    await expect(withRetry('ebs:StartSnapshot', fn, { sleep })).rejects.toThrow(/ConflictException/);
    expect(calls.count).toBe(1);
  });

  test('does not retry a client error and names the call in the message', async () => {
    // GIVEN an error that another attempt cannot fix
    const { fn, calls } = failingThenDone([awsError('InvalidParameterValue')]);
    // WHEN / THEN
    await expect(withRetry('ec2:RunInstances', fn, { sleep })).rejects.toThrow(/^ec2:RunInstances failed: InvalidParameterValue from AWS$/);
    expect(calls.count).toBe(1);
    expect(delays).toEqual([]);
  });

  test('gives up after the given attempts, keeping the error name', async () => {
    const errors = Array.from({ length: 5 }, () => awsError('RequestLimitExceeded'));
    const { fn, calls } = failingThenDone(errors);
    const failure = withRetry('ec2:CreateTags', fn, { attempts: 3, sleep });
    await expect(failure).rejects.toMatchObject({
      name: 'RequestLimitExceeded',
      message: 'ec2:CreateTags failed after 3 attempts: RequestLimitExceeded from AWS',
    });
    expect(calls.count).toBe(3);
  });

  test('delays grow exponentially within full jitter and are capped', async () => {
    // GIVEN Math.random at its upper end, so each delay is its ceiling (minus rounding)
    const random = jest.spyOn(Math, 'random').mockReturnValue(0.999999);
    const errors = Array.from({ length: 6 }, () => awsError('ThrottlingException'));
    try {
      await withRetry('ssm:SendCommand', failingThenDone(errors).fn, { attempts: 7, baseDelayMs: 100, maxDelayMs: 1000, sleep });
    } finally {
      random.mockRestore();
    }
    // THEN ceilings 100, 200, 400, 800, then the 1000 cap
    expect(delays).toEqual([99, 199, 399, 799, 999, 999]);
  });

  test('full jitter can pick no delay at all', async () => {
    const random = jest.spyOn(Math, 'random').mockReturnValue(0);
    try {
      await withRetry('x', failingThenDone([awsError('ThrottlingException')]).fn, { sleep });
    } finally {
      random.mockRestore();
    }
    expect(delays).toEqual([0]);
  });

  test('maxElapsedMs ends the retries once that long has passed, whatever attempts allows', async () => {
    // GIVEN a call that always fails, and a clock that a sleep moves on
    let now = 0;
    setClock({ now: () => now, sleep: async () => undefined, random: () => 0.999999 });
    try {
      const calls = { count: 0 };
      const failure = withRetry('ebs:PutSnapshotBlock', async () => {
        calls.count++;
        throw awsError('ThrottlingException');
      }, { attempts: 100, baseDelayMs: 1000, maxDelayMs: 1000, maxElapsedMs: 5000, sleep: async (ms) => { now += ms; } });
      // THEN waits of 999 ms until five seconds have passed (after the sixth), then the error goes through
      await expect(failure).rejects.toThrow(/after 7 attempts/);
      expect(calls.count).toBe(7);
    } finally {
      setClock(undefined);
    }
  });

  test('a custom isRetryable decides', async () => {
    const { fn, calls } = failingThenDone([awsError('IncorrectState')]);
    await expect(withRetry('ec2:DeleteVolume', fn, { sleep, isRetryable: (e) => (e as Error).name === 'IncorrectState' })).resolves.toBe('done');
    expect(calls.count).toBe(2);
  });
});

describe('isRetryableError', () => {
  test.each([
    [awsError('ThrottlingException'), true],
    [awsError('SlowDown', 503), true],
    [awsError('Whatever', 502), true],
    [awsError('TooManyRequests', 429), true],
    [Object.assign(new Error('reset'), { code: 'ECONNRESET' }), true],
    [awsError('InvalidVolume.NotFound'), false],
    [awsError('UnauthorizedOperation', 403), false],
    [new Error('plain'), false],
    ['a string', false],
    [undefined, false],
  ])('%p -> %p', (err, expected) => {
    expect(isRetryableError(err)).toBe(expected);
  });
});
