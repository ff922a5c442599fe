/**
 * Inspection as a sequence of reads. The parsers are generators that yield the byte ranges they
 * want (a batch at a time) and get the bytes back, so one parser serves a kernel in memory, in a
 * file read with positioned reads, in S3 read by ranges, or inside a gzip stream, each through its
 * own driver, and reads only what it asks for: headers, program headers, notes; never the rest.
 */

/** A byte range the parser wants. */
export interface ReadRequest {
  readonly offset: number;
  readonly length: number;
}

/** The bytes of each request, in order; a request past the end of the data gets fewer bytes. */
export interface ReadResults {
  readonly bytes: readonly Uint8Array[];
  /** Size of the data; set whenever a result is shorter than asked. */
  readonly size?: number;
}

/** A parser: yields batches of requests, gets their bytes back, returns its finding. */
export type Reads<T> = Generator<readonly ReadRequest[], T, ReadResults>;

/** Reads one range (shorter at the end of the data); returns its bytes and, when short, the data's size. */
export function* readRange(offset: number, length: number): Reads<{ readonly bytes: Uint8Array; readonly size?: number }> {
  const results = yield [{ offset, length }];
  return { bytes: results.bytes[0], size: results.size };
}

/** Answers one batch of requests synchronously. */
export type SyncReader = (requests: readonly ReadRequest[]) => ReadResults;

/** Answers one batch of requests. */
export type AsyncReader = (requests: readonly ReadRequest[]) => Promise<ReadResults>;

export function runSync<T>(parser: Reads<T>, reader: SyncReader): T {
  let step = parser.next();
  while (!step.done) {
    step = parser.next(reader(step.value));
  }
  return step.value;
}

export async function runAsync<T>(parser: Reads<T>, reader: AsyncReader): Promise<T> {
  let step = parser.next();
  while (!step.done) {
    step = parser.next(await reader(step.value));
  }
  return step.value;
}

/** Reads of bytes in memory. */
export function bytesReader(bytes: Uint8Array): SyncReader {
  return (requests) => ({
    bytes: requests.map(({ offset, length }) => bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length))),
    size: bytes.length,
  });
}

/** Reads of the range [start, start + length) of another reader's data, as data of its own. */
export function rangeReader(reader: SyncReader, start: number, length: number): SyncReader {
  return (requests) => clip(reader(shift(requests, start, length)), length);
}

/** rangeReader for an AsyncReader. */
export function asyncRangeReader(reader: AsyncReader, start: number, length: number): AsyncReader {
  return async (requests) => clip(await reader(shift(requests, start, length)), length);
}

function shift(requests: readonly ReadRequest[], start: number, length: number): ReadRequest[] {
  return requests.map(({ offset, length: wanted }) => ({
    offset: start + Math.min(offset, length),
    length: Math.max(0, Math.min(wanted, length - offset)),
  }));
}

/** The range is the data now: its size is the range's length (callers check the range lies inside the data). */
function clip(results: ReadResults, length: number): ReadResults {
  return { bytes: results.bytes, size: length };
}
