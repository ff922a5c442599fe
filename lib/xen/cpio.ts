/**
 * A writer of "newc" cpio archives, the format the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header of 8-digit hex
 * fields per entry, then the NUL-terminated name and the data, each padded to 4 bytes, closed by the
 * entry TRAILER!!!. Several archives may follow one another, each compressed or not: the kernel
 * unpacks them in order, later files replacing earlier ones.
 */
import { createWriteStream, readFileSync } from 'fs';
import { createGzip } from 'zlib';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

interface Entry {
  readonly path: string;
  readonly mode: number;
  readonly mtime: number;
  /** File contents, a symlink's target, or a function that reads the file when it is written. */
  readonly data: Buffer | (() => Buffer);
}

/** An archive built in memory, entry by entry; file contents are read from disk only when written. */
export class CpioArchive {
  private readonly entries = new Map<string, Entry>();

  /** Adds a directory and any missing parents. */
  directory(path: string, mode = 0o755): this {
    const clean = cleanPath(path);
    const existing = this.entries.get(clean);
    if (clean === '' || (existing && kind(existing) === S_IFDIR)) {
      return this;
    }
    this.refuseReplacing(clean);
    this.parents(clean);
    this.entries.set(clean, { path: clean, mode: S_IFDIR | mode, mtime: 0, data: Buffer.alloc(0) });
    return this;
  }

  /** Adds a file with these contents (and missing parent directories). */
  file(path: string, contents: Buffer | string, mode = 0o644, mtime = 0): this {
    const clean = cleanPath(path);
    this.refuseReplacingOtherThanFile(clean);
    this.parents(clean);
    const data = typeof contents === 'string' ? Buffer.from(contents) : contents;
    this.entries.set(clean, { path: clean, mode: S_IFREG | mode, mtime, data });
    return this;
  }

  /** Adds a file whose contents are read from `source` when the archive is written. */
  fileFrom(path: string, source: string, mode: number, mtime: number): this {
    const clean = cleanPath(path);
    this.refuseReplacingOtherThanFile(clean);
    this.parents(clean);
    this.entries.set(clean, { path: clean, mode: S_IFREG | (mode & 0o7777), mtime, data: () => readFileSync(source) });
    return this;
  }

  /** Adds a symbolic link to `target` (which is not checked). */
  symlink(path: string, target: string): this {
    const clean = cleanPath(path);
    const existing = this.entries.get(clean);
    if (existing && kind(existing) === S_IFLNK && existing.data.toString() === target) {
      return this;
    }
    this.refuseReplacing(clean);
    this.parents(clean);
    this.entries.set(clean, { path: clean, mode: S_IFLNK | 0o777, mtime: 0, data: Buffer.from(target) });
    return this;
  }

  has(path: string): boolean {
    return this.entries.has(cleanPath(path));
  }

  get size(): number {
    return this.entries.size;
  }

  /** The archive's bytes, uncompressed; for small archives. */
  toBuffer(): Buffer {
    return Buffer.concat([...this.chunks()]);
  }

  /** Writes the archive, gzip-compressed, to `path`. */
  async writeGzip(path: string, level = 6): Promise<void> {
    const gzip = createGzip({ level });
    const out = createWriteStream(path);
    const done = new Promise<void>((resolve, reject) => {
      out.on('finish', resolve);
      out.on('error', reject);
      gzip.on('error', reject);
    });
    gzip.pipe(out);
    for (const chunk of this.chunks()) {
      if (!gzip.write(chunk)) {
        await new Promise((resolve) => gzip.once('drain', resolve));
      }
    }
    gzip.end();
    await done;
  }

  private *chunks(): Generator<Buffer> {
    // Parents before children: the kernel does not create missing directories while unpacking.
    // Symbolic links last, so that none is in the way of an entry while the archive unpacks.
    const isLink = (entry: Entry) => kind(entry) === S_IFLNK;
    const sorted = [...this.entries.values()].sort((a, b) =>
      isLink(a) !== isLink(b) ? (isLink(a) ? 1 : -1) : a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
    );
    let ino = 1;
    for (const entry of sorted) {
      const data = typeof entry.data === 'function' ? entry.data() : entry.data;
      yield header(entry.path, entry.mode, entry.mtime, data.length, ino++);
      yield data;
      yield padding(data.length);
    }
    yield header('TRAILER!!!', 0, 0, 0, 0);
  }

  /**
   * Entries go in at their real path, never through a link: the kernel unpacks symbolic links last
   * (see chunks), and a directory and a link cannot share a name.
   */
  private parents(path: string): void {
    const slash = path.lastIndexOf('/');
    if (slash > 0) {
      const parent = path.slice(0, slash);
      const existing = this.entries.get(parent);
      if (existing && kind(existing) === S_IFLNK) {
        throw new Error(`cpio: ${path} would be unpacked through the symbolic link ${parent}; add it at its real path`);
      }
      this.directory(parent);
    }
  }

  private refuseReplacingOtherThanFile(path: string): void {
    const existing = this.entries.get(path);
    if (existing && kind(existing) !== S_IFREG) {
      throw new Error(`cpio: ${path} is already in the archive as a directory or link`);
    }
  }

  private refuseReplacing(path: string): void {
    if (this.entries.has(path) || [...this.entries.keys()].some((name) => name.startsWith(path + '/'))) {
      throw new Error(`cpio: ${path} is already in the archive as another kind of entry`);
    }
  }
}

function kind(entry: Entry): number {
  return entry.mode & 0o170000;
}

function cleanPath(path: string): string {
  return path.replace(/^\/+/, '').replace(/\/+$/, '');
}

function header(name: string, mode: number, mtime: number, fileSize: number, ino: number): Buffer {
  const nameBytes = Buffer.from(name + '\0');
  const fields = [ino, mode, 0, 0, 1, mtime, fileSize, 0, 0, 0, 0, nameBytes.length, 0];
  const text = '070701' + fields.map((field) => field.toString(16).padStart(8, '0')).join('');
  // The header (110 bytes) and the name together are padded to a multiple of 4.
  return Buffer.concat([Buffer.from(text, 'ascii'), nameBytes, padding(text.length + nameBytes.length)]);
}

function padding(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}
