// @ts-check
// Records: private content posted to a bound chain, edited and deleted by its author, every
// version kept. The content lives offchain: fetched from the chain's peers (the relay
// included) when this device lacks it, each piece verified before it is kept.
import { call, EndraError, internalOnly } from './errors.js';

/**
 * @typedef {'available' | 'fetching' | 'missing' | 'erased' | 'none'} ContentStatus
 * @typedef {{ id: string, device: string, kind: 'created' | 'edited' | 'deleted', time: number,
 *   erased: boolean, root?: string, type?: string, size?: number }} RecordVersion
 * @typedef {{ id: string, reason: string }} RefusedVersion
 * @typedef {{ id: string, author: string, current: string | null, deleted: string | null,
 *   erased: boolean, conflicts: string[], root?: string, type?: string, size?: number, status: ContentStatus,
 *   done?: number, total?: number, tooLarge?: boolean, waitingForRoom?: boolean, waitingForRelay?: boolean, history: RecordVersion[], refused: RefusedVersion[] }} RecordFields
 * @typedef {{ post(body: Uint8Array, type: string): Promise<RecordFields>,
 *   postFrom(read: (index: number) => Promise<Uint8Array>, size: number, type: string): Promise<RecordFields>,
 *   edit(record: string, body: Uint8Array, type: string): Promise<string>,
 *   editFrom(record: string, read: (index: number) => Promise<Uint8Array>, size: number, type: string): Promise<string>,
 *   delete(record: string, erase: boolean): Promise<string>,
 *   records(maxFetch: number): Promise<RecordFields[]>,
 *   prepare(id: string, version: boolean): Promise<{ commitment: Uint8Array, segments: number, size: number }>,
 *   segments(commitment: Uint8Array, from: number, count: number): Promise<Uint8Array[]> }} RawRecords
 */

/** Plaintext bytes per segment: what wasm takes at a time. */
const SEGMENT = 65_536;
/**
 * Segments read back from wasm at a time (1 MiB): a large content crosses in pieces, never
 * whole in wasm memory, which never shrinks once grown.
 */
const SEGMENTS_AT_ONCE = 16;
/** The largest content the protocol allows, and a bound chain's default limit: 100 MiB. */
export const MAX_CONTENT_BYTES = 100 * 1024 * 1024;

/**
 * `bytes` if a chain can have it as its content limit, else an `INVALID_ARGUMENT` error
 * naming `what`.
 * @param {unknown} bytes
 * @param {string} what
 * @returns {number}
 */
export function checkedContentLimit(bytes, what) {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_CONTENT_BYTES) {
    throw new EndraError(`${what} must be a whole number of bytes from 0 to ${MAX_CONTENT_BYTES}`, 'INVALID_ARGUMENT');
  }
  return bytes;
}

/**
 * Refuses content of `size` bytes over `limit` with `CONTENT_TOO_LARGE`.
 * @param {number} size
 * @param {number} limit
 */
export function withinLimit(size, limit) {
  if (size > limit) throw new EndraError(`content of ${size} bytes is over the limit of ${limit}`, 'CONTENT_TOO_LARGE');
}

/** @param {Content} content */
export const sizeOf = (content) => ('body' in content ? content.body.length : content.size);

/**
 * A content as `post` and `edit` hand it to wasm: bytes whole (`body`), or — for a `Blob`,
 * `File` or `ReadableStream` larger than one segment — `read(index)`, one 64 KiB segment at a
 * time, so that a large file is never one allocation in wasm memory.
 * @typedef {{ type: string, body: Uint8Array } | { type: string, size: number, read: (index: number) => Promise<Uint8Array> }} Content
 */

/**
 * What `post` and `edit` take: bytes, text (UTF-8, `text/plain` by default), a `Blob`/`File`
 * (its type by default) or a `ReadableStream` of bytes (kept as a `Blob` by the browser first).
 * @param {Uint8Array | string | Blob | ReadableStream<Uint8Array>} content
 * @param {string | undefined} type
 * @returns {Promise<Content>}
 */
export async function contentOf(content, type) {
  if (typeof content === 'string') {
    return { body: new TextEncoder().encode(content), type: type ?? 'text/plain;charset=utf-8' };
  }
  if (content instanceof Uint8Array) return { body: content, type: type ?? 'application/octet-stream' };
  if (typeof ReadableStream !== 'undefined' && content instanceof ReadableStream) {
    content = await new Response(content).blob();
  }
  if (typeof Blob !== 'undefined' && content instanceof Blob) {
    const blob = content;
    const media = type ?? (blob.type || 'application/octet-stream');
    if (blob.size <= SEGMENT) return { body: new Uint8Array(await blob.arrayBuffer()), type: media };
    const read = async (/** @type {number} */ index) => new Uint8Array(await blob.slice(index * SEGMENT, (index + 1) * SEGMENT).arrayBuffer());
    return { size: blob.size, read, type: media };
  }
  throw new EndraError('content must be a Uint8Array, a string, a Blob or a ReadableStream', 'INVALID_ARGUMENT');
}

/**
 * Makes sure a content is here (fetched first if not) and reads it back: its size, and its
 * segments opened, SEGMENTS_AT_ONCE a wasm call, the next call made while the caller takes
 * the segments of one — at most two calls' segments (2 MiB) held. One that opens to fewer
 * segments than its commitment names fails (`INTERNAL`) rather than end early.
 * @param {RawRecords} raw
 * @param {string} id
 * @param {boolean} exact
 * @returns {Promise<{ size: number, segments: AsyncGenerator<Uint8Array, void, void> }>}
 */
async function readBack(raw, id, exact) {
  const { commitment, segments: count, size } = await raw.prepare(id, exact);
  const read = (/** @type {number} */ from) => {
    if (from >= count) return undefined;
    const piece = raw.segments(commitment, from, SEGMENTS_AT_ONCE);
    // Awaited below unless the reader stops first: its failure is then nobody's.
    piece.catch(() => {});
    return piece;
  };
  async function* segments() {
    let next = read(0);
    let given = 0;
    for (let from = 0; next; from += SEGMENTS_AT_ONCE) {
      const piece = await next;
      next = read(from + SEGMENTS_AT_ONCE);
      given += piece.length;
      yield* piece;
    }
    if (given !== count) throw new EndraError(`${given} of the content's ${count} segments opened`, 'INTERNAL');
  }
  return { size, segments: segments() };
}

/**
 * A record of a bound chain as this device saw it when listed (`chain.records()`): a
 * snapshot — list again after a `change` event for the newest. Its content comes with
 * `content()` / `text()`.
 */
export class Record {
  /** @type {RawRecords} */
  #raw;
  /** The chain's `maxContentBytes` now. @type {() => number} */
  #limit;

  /**
   * @param {symbol} token
   * @param {RawRecords} raw
   * @param {RecordFields} fields
   * @param {() => number} limit
   */
  constructor(token, raw, fields, limit) {
    internalOnly(token, 'records come from a bound chain: chain.post(…), chain.records()');
    this.#raw = raw;
    this.#limit = limit;
    /** The record's ID: its first version's block ID. */
    this.id = fields.id;
    /** The DID of the person who wrote it. */
    this.author = fields.author;
    /** The current version's ID; `null` once deleted. */
    this.current = fields.current;
    /** The delete's ID, if deleted. */
    this.deleted = fields.deleted;
    /** Whether a delete erased the content of every version. */
    this.erased = fields.erased;
    /** Edits concurrent with the current version (the author resolves them by editing again). */
    this.conflicts = fields.conflicts;
    /** The current content's root (hex: what `progress` events name), media type and size in bytes. */
    this.root = fields.root;
    this.type = fields.type;
    this.size = fields.size;
    /** Where the current content stands on this device: `available`, `fetching` (`done` of `total` bytes), `missing`, `erased`, or `none` once deleted. */
    this.status = fields.status;
    this.done = fields.done;
    this.total = fields.total;
    /** Whether the current content is over the chain's `maxContentBytes` and not here: not fetched. */
    this.tooLarge = fields.tooLarge ?? false;
    /**
     * Whether the current content is not here and its last fetch found no room in this
     * device's quota of stored content (`Endra.start({ maxStoredContentBytes })`): asked
     * again at each listing, fetched once erasures make room.
     */
    this.waitingForRoom = fields.waitingForRoom ?? false;
    /**
     * Whether the current content is one this device posted that no relay holds whole yet
     * ("sending"): other devices can have it only while this one is online. False once a
     * relay keeps it (the chain's `kept` event); kept in the store, so a reload still knows.
     */
    this.waitingForRelay = fields.waitingForRelay ?? false;
    /** Every version in causal order — created, edited, deleted — deleted ones included. */
    this.history = fields.history;
    /** Versions every replica refused (an edit by someone else than the author, say). */
    this.refused = fields.refused;
  }

  /**
   * The current content (or that of the version `id` of `history`), fetched from the
   * chain's peers first if this device lacks it — progress as the chain's `progress`
   * events. Rejects with `RECORD_DELETED`, `CONTENT_UNAVAILABLE` (erased), `NO_KEY` (posted
   * after this device was removed), `CONTENT_TOO_LARGE` (over the chain's
   * `maxContentBytes` and not here: not fetched).
   * @param {{ version?: string }} [opts]
   * @returns {Promise<Uint8Array>}
   */
  content({ version } = {}) {
    return call(async () => {
      this.#fetchable(version);
      const { size, segments } = await readBack(this.#raw, version ?? this.id, version !== undefined);
      // Assembled here, outside wasm memory.
      const content = new Uint8Array(size);
      let at = 0;
      for await (const segment of segments) {
        if (at + segment.length <= size) content.set(segment, at);
        at += segment.length;
      }
      if (at !== size) throw new EndraError(`the content opened to ${at} bytes, not the ${size} its commitment names`, 'INTERNAL');
      return content;
    });
  }

  /**
   * Refuses to fetch a content over the chain's limit that is not here.
   * @param {string | undefined} version
   */
  #fetchable(version) {
    const size = version === undefined ? this.size : this.history.find((h) => h.id === version)?.size;
    const here = version === undefined && this.status === 'available';
    if (size !== undefined && !here) withinLimit(size, this.#limit());
  }

  /**
   * The current content (or that of `version`) as a stream of its segments (at most 64 KiB
   * each, read and opened 16 at a time, the next 16 while these are read): a large content
   * is never held whole.
   * Fetched from the chain's peers first if this device lacks it; errors as `content()`.
   * @param {{ version?: string }} [opts]
   * @returns {ReadableStream<Uint8Array>}
   */
  stream({ version } = {}) {
    const raw = this.#raw;
    const id = version ?? this.id;
    const exact = version !== undefined;
    /** @type {AsyncIterator<Uint8Array> | undefined} */
    let segments;
    const fetchable = () => this.#fetchable(version);
    return new ReadableStream({
      async pull(controller) {
        try {
          segments ??= (await call(() => {
            fetchable();
            return readBack(raw, id, exact);
          })).segments;
          const next = await call(() => /** @type {AsyncIterator<Uint8Array>} */ (segments).next());
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (error) {
          controller.error(error);
        }
      },
      async cancel() {
        await segments?.return?.();
      },
    }, { highWaterMark: 1 });
  }

  /**
   * The current content as text (UTF-8).
   * @param {{ version?: string }} [opts]
   */
  async text(opts) {
    return new TextDecoder().decode(await this.content(opts));
  }

  /**
   * Edits the record (its author's devices only: `NOT_THE_AUTHOR` otherwise); resolves to
   * the new version's ID.
   * @param {Uint8Array | string | Blob | ReadableStream<Uint8Array>} content
   * @param {{ type?: string }} [opts]
   */
  async edit(content, { type } = {}) {
    const given = await contentOf(content, type);
    withinLimit(sizeOf(given), this.#limit());
    const raw = this.#raw;
    return call(() => ('body' in given
      ? raw.edit(this.id, given.body, given.type)
      : raw.editFrom(this.id, given.read, given.size, given.type)));
  }

  /**
   * Deletes the record (its author, or an admin: `NOT_PERMITTED` otherwise); with `erase`,
   * every member's device drops the content of every version when it next lists the chain,
   * and the relays this page reaches now drop their copies — they cannot read the delete, so
   * this device shows them each content's erase secret, which only a member can derive; a
   * relay unreachable now is asked when this device next connects to it (the requests are
   * kept in the store, across reloads). Resolves to the delete's ID once the relays reached
   * now answered.
   * @param {{ erase?: boolean }} [opts]
   */
  delete({ erase = false } = {}) {
    return call(() => this.#raw.delete(this.id, erase));
  }
}
