// @ts-check
// Bound chains: chains an identity's current devices alone write and read.
import { WasmChain } from './wasm/endra.js';
import { bytes, call, EndraError, INTERNAL, internalOnly, options, readable } from './errors.js';
import { makeChain, nextWake, touch } from './chain.js';
import { unwatch, watch } from './node.js';
import { checkedContentLimit, contentOf, MAX_CONTENT_BYTES, Record, sizeOf, withinLimit } from './record.js';
import { rawStore } from './store.js';

/** @typedef {import('./store.js').Store} Store */
/** @typedef {import('./node.js').Node} Node */
/** @typedef {import('./chain.js').Chain} Chain */
/**
 * A decrypted message.
 * @typedef {{ id: string, author: string, device?: string, time: number, body?: Uint8Array, error?: import('./errors.js').EndraError }} Message
 */
/** @typedef {Message & { seq: number }} SubscribedMessage */
/**
 * The wasm-bindgen handle of a bound chain.
 * @typedef {{ chain: string, write(body: Uint8Array, topics: string[]): Promise<string>, messages(): Promise<Message[]>, recordEvents(since: number): Promise<RecordEvent[]> } & import('./record.js').RawRecords} RawBoundChain
 */
/** @typedef {{ chain: string, root: string, status: string, done?: number, total?: number }} ContentProgress */
/** @typedef {{ chain: string, root: string, relay: string }} ContentKept */
/**
 * What a record event tells: a version became valid (`created`, `edited`, `deleted`, with
 * `erase` for an erasing delete), its content is all here (`content`), or a version told
 * before is no longer shown (`withdrawn`: its author's device was removed before any current
 * device built on it).
 * @typedef {{ seq: number, kind: 'created' | 'edited' | 'deleted' | 'content' | 'withdrawn', record: string, version: string, erase?: true }} RecordEvent
 */

/**
 * Each context's default content limit (`Endra.start({ maxContentBytes })`), by its node.
 * @type {WeakMap<Node, number>}
 */
const contextLimits = new WeakMap();

/**
 * Sets the content limit (checked) every bound chain handle opened over `node` starts with.
 * Package-internal: `Endra.start` calls it.
 * @param {Node} node
 * @param {number} bytes
 */
export function setContextContentLimit(node, bytes) {
  contextLimits.set(node, bytes);
}

// Package-internal, assigned in the class's static block. Not re-exported by index.js.
/** @type {(raw: RawBoundChain, store: Store, node: Node, maxContentBytes?: number) => Promise<BoundChain>} */
export let makeBoundChain;

/**
 * A chain bound to an identity (`identity.createChain()`, `identity.openChain(id)`): written
 * and read by the identity's current devices only. Events: `change` (new messages, from this
 * page or from peers; or iterate `subscribe()`), `progress` (a record's content being
 * fetched), `kept` (a relay holds all of a content this device posted: "sent").
 */
export class BoundChain extends EventTarget {
  /** @type {RawBoundChain} */
  #raw;
  /** @type {Node} */
  #node;
  /** The same chain as plain blocks: arrival order (`seq`) and wake-ups for `subscribe`. @type {Chain} */
  #blocks;
  #wake = () => this.dispatchEvent(new CustomEvent('change'));
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #fetchTimer;
  #maxContentBytes = MAX_CONTENT_BYTES;
  #closed = false;
  /** Resolvers of the record-event iterators waiting for something new. @type {Set<() => void>} */
  #wakers = new Set();
  /**
   * Every current content not here is fetched in the background, by itself: when the chain
   * opens and after its changes (a listing starts the fetches, see `records()`; at most one
   * listing per 100 ms). Failures show in the app's own calls.
   */
  #fetchMissing = () => {
    if (this.#fetchTimer !== undefined) return;
    this.#fetchTimer = setTimeout(() => {
      this.#fetchTimer = undefined;
      this.records().catch(() => {});
    }, 100);
  };
  /** @param {Event} event */
  #progress = (event) => {
    const detail = /** @type {CustomEvent<ContentProgress>} */ (event).detail;
    if (detail.chain !== this.id) return;
    this.dispatchEvent(new CustomEvent('progress', { detail }));
    if (detail.status === 'available') this.#wakeRecordEvents();
  };
  /** @param {Event} event */
  #kept = (event) => {
    const detail = /** @type {CustomEvent<ContentKept>} */ (event).detail;
    if (detail.chain === this.id) this.dispatchEvent(new CustomEvent('kept', { detail }));
  };
  #wakeRecordEvents = () => {
    for (const waker of [...this.#wakers]) waker();
  };

  /**
   * @param {symbol} token
   * @param {RawBoundChain} raw
   * @param {Node} node
   * @param {Chain} blocks
   * @param {number} [maxContentBytes]
   */
  constructor(token, raw, node, blocks, maxContentBytes = contextLimits.get(node) ?? MAX_CONTENT_BYTES) {
    internalOnly(token, 'bound chains come from an identity: identity.createChain(), identity.openChain(id)');
    super();
    this.#raw = raw;
    this.#node = node;
    this.#blocks = blocks;
    // Before the first listing below: nothing over it is fetched, from the start.
    this.maxContentBytes = maxContentBytes;
    watch(node, raw.chain, this.#wake);
    watch(node, raw.chain, this.#fetchMissing);
    this.addEventListener('change', this.#wakeRecordEvents);
    node.addEventListener('content', this.#progress);
    node.addEventListener('kept', this.#kept);
    this.#fetchMissing();
  }

  /** The chain ID. */
  get id() {
    return this.#raw.chain;
  }

  /**
   * The largest content this handle posts, fetches or reads, in bytes (100 MiB, the most the
   * protocol allows, by default): `post` and `edit` over it reject with `CONTENT_TOO_LARGE`
   * before reading anything; a record whose content is over it and not here is not fetched
   * (`tooLarge`), and reading it rejects with `CONTENT_TOO_LARGE`. Raised, the contents now
   * within it are fetched. Also an option of `identity.openChain(id, { maxContentBytes })`,
   * and of `Endra.start({ maxContentBytes })` for every handle of the context.
   */
  get maxContentBytes() {
    return this.#maxContentBytes;
  }

  set maxContentBytes(bytes) {
    checkedContentLimit(bytes, 'maxContentBytes');
    const raised = bytes > this.#maxContentBytes;
    this.#maxContentBytes = bytes;
    if (raised) this.#fetchMissing();
  }

  /**
   * Writes a message (a `Uint8Array`) sealed under the identity's current epoch;
   * resolves to its block ID. Rejects with `NOT_A_MEMBER` once this device was removed.
   * @param {Uint8Array} body
   * @param {{ topics?: string[] }} [options]
   * @returns {Promise<string>}
   */
  async write(body, { topics = [] } = {}) {
    const id = await call(() => this.#raw.write(bytes(body, 'body'), topics));
    // Written through the identity's account, not through `#blocks`: wake its readers.
    touch(this.#blocks);
    this.#wake();
    return id;
  }

  /**
   * Messages in order: `[{ id, author, device, time, body }]`; `error` (an `EndraError`)
   * instead of `body` if this device cannot read one.
   * @returns {Promise<Message[]>}
   */
  messages() {
    return call(async () => readable(await this.#raw.messages()));
  }

  /**
   * Every message whose block arrived in this store after `since` (a `seq`, as for
   * `Chain.subscribe`; all messages by default), each exactly once, in arrival order —
   * parents before children, so a reply never comes before what it answers — then new ones
   * as they arrive, from this page, other tabs or peers. Each carries its block's `seq`:
   * pass the last one seen to resume after a reload. Blocks that are not shown as messages
   * (the chain's genesis, a removed device's blocks written "into the past") are skipped.
   * A message is yielded as it reads when it arrives: one this device had no key for yet
   * comes with `error` (`messages()` shows it again once readable).
   * @param {{ since?: number, signal?: AbortSignal }} [opts]
   * @returns {AsyncGenerator<SubscribedMessage, void, undefined>}
   */
  async *subscribe(opts) {
    const { since = -1, signal } = options(opts, 'subscribe(options)');
    /** @type {Map<string, Message>} */
    let shown = new Map();
    for await (const block of this.#blocks.subscribe({ since, signal })) {
      // The messages are read (and decrypted) again only when a block is not among them yet.
      if (!shown.has(block.id)) shown = new Map((await this.messages()).map((m) => [m.id, m]));
      const message = shown.get(block.id);
      if (message) yield { ...message, seq: block.seq };
    }
  }

  /**
   * Record events after `since` (a `seq` of this iterator's events; all by default), each
   * exactly once, then new ones as they come: `created`, `edited` and `deleted` (with
   * `erase: true` for an erasing delete) when a version becomes valid, in causal order (a
   * version after every version it saw); `content` once a version's content is all here,
   * verified (inline with its block, fetched, or posted here); `withdrawn` when a version
   * told before is no longer shown (its author's device was removed before any current
   * device built on it; told again if it comes back). What was told is kept in the store:
   * pass the last `seq` seen to resume after a reload, with nothing missed or repeated.
   * @param {{ since?: number, signal?: AbortSignal }} [opts]
   * @returns {AsyncGenerator<RecordEvent, void, undefined>}
   */
  async *recordEvents(opts) {
    const { since = -1, signal } = options(opts, 'recordEvents(options)');
    if (!Number.isSafeInteger(since) || since < -1) {
      throw new EndraError('since must be the seq of a record event, or -1 for all', 'INVALID_ARGUMENT');
    }
    let cursor = since;
    while (!this.#closed && !signal?.aborted) {
      const woken = nextWake(this.#wakers, signal);
      /** @type {RecordEvent[]} */
      const page = await call(() => this.#raw.recordEvents(cursor));
      for (const event of page) {
        cursor = event.seq;
        yield event;
      }
      if (page.length === 0) await woken;
    }
  }

  /**
   * Posts a record: the content (bytes, text, a `Blob`/`File` or a `ReadableStream`) is
   * sealed under the identity's epoch into this device's content store — never into the
   * chain, whose block carries only a commitment to it — and offered to the relays, which
   * keep it (as ciphertext) for members whose devices are offline. A text of up to 64 KiB
   * travels with its block. A `Blob` is read a 64 KiB segment at a time, twice (once for its
   * root, once to store it), never whole in memory. Resolves to the record.
   * @param {Uint8Array | string | Blob | ReadableStream<Uint8Array>} content
   * @param {{ type?: string }} [opts]
   * @returns {Promise<Record>}
   */
  async post(content, { type } = {}) {
    const given = await contentOf(content, type);
    withinLimit(sizeOf(given), this.#maxContentBytes);
    const raw = this.#raw;
    // The record as a listing shows it, read from its block: no listing of the chain.
    const fields = await call(() => ('body' in given
      ? raw.post(given.body, given.type)
      : raw.postFrom(given.read, given.size, given.type)));
    touch(this.#blocks);
    this.#wake();
    return new Record(INTERNAL, raw, fields, () => this.#maxContentBytes);
  }

  /**
   * Every record this device can read, in chain order, with its history and where its
   * content stands here (`status`).
   * @returns {Promise<Record[]>}
   */
  async records() {
    const raw = this.#raw;
    const limit = () => this.#maxContentBytes;
    return (await call(() => raw.records(limit()))).map((fields) => new Record(INTERNAL, raw, fields, limit));
  }

  /**
   * One record by ID, if this device holds it.
   * @param {string} id
   * @returns {Promise<Record | undefined>}
   */
  async record(id) {
    return (await this.records()).find((r) => r.id === String(id));
  }

  /**
   * Peer IDs syncing this chain with this device.
   * @returns {Promise<string[]>}
   */
  peers() {
    return this.#node.peers(this.id);
  }

  /** Stops events and subscriptions of this handle. */
  close() {
    this.#closed = true;
    this.#wakeRecordEvents();
    unwatch(this.#node, this.id, this.#wake);
    unwatch(this.#node, this.id, this.#fetchMissing);
    clearTimeout(this.#fetchTimer);
    this.#node.removeEventListener('content', this.#progress);
    this.#node.removeEventListener('kept', this.#kept);
    this.#blocks.close();
  }

  static {
    makeBoundChain = async (raw, store, node, maxContentBytes) => {
      // The node syncs the chain already (the identity opened it there): only watched here.
      const blocks = await makeChain(await call(() => WasmChain.open(rawStore(store), raw.chain)), store, node, { open: false });
      return new BoundChain(INTERNAL, raw, node, blocks, maxContentBytes);
    };
  }
}
