// @ts-check
// Bound chains: chains an identity's current devices alone write and read.
import { WasmChain } from './wasm/endra.js';
import { bytes, call, EndraError, INTERNAL, internalOnly, options, readable } from './errors.js';
import { makeChain, touch } from './chain.js';
import { unwatch, watch } from './node.js';
import { contentOf, MAX_CONTENT_BYTES, Record, sizeOf, withinLimit } from './record.js';
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
 * @typedef {{ chain: string, write(body: Uint8Array, topics: string[]): Promise<string>, messages(): Promise<Message[]> } & import('./record.js').RawRecords} RawBoundChain
 */
/** @typedef {{ chain: string, root: string, status: string, done?: number, total?: number }} ContentProgress */

// Package-internal, assigned in the class's static block. Not re-exported by index.js.
/** @type {(raw: RawBoundChain, store: Store, node: Node, maxContentBytes?: number) => Promise<BoundChain>} */
export let makeBoundChain;

/**
 * A chain bound to an identity (`identity.createChain()`, `identity.openChain(id)`): written
 * and read by the identity's current devices only. Event: `change` (new messages, from this
 * page or from peers); or iterate `subscribe()`.
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
    if (detail.chain === this.id) this.dispatchEvent(new CustomEvent('progress', { detail }));
  };

  /**
   * @param {symbol} token
   * @param {RawBoundChain} raw
   * @param {Node} node
   * @param {Chain} blocks
   * @param {number} [maxContentBytes]
   */
  constructor(token, raw, node, blocks, maxContentBytes = MAX_CONTENT_BYTES) {
    internalOnly(token, 'bound chains come from an identity: identity.createChain(), identity.openChain(id)');
    super();
    this.#raw = raw;
    this.#node = node;
    this.#blocks = blocks;
    // Before the first listing below: nothing over it is fetched, from the start.
    this.maxContentBytes = maxContentBytes;
    watch(node, raw.chain, this.#wake);
    watch(node, raw.chain, this.#fetchMissing);
    node.addEventListener('content', this.#progress);
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
   * within it are fetched. Also an option of `identity.openChain(id, { maxContentBytes })`.
   */
  get maxContentBytes() {
    return this.#maxContentBytes;
  }

  set maxContentBytes(bytes) {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_CONTENT_BYTES) {
      throw new EndraError(`maxContentBytes must be a whole number of bytes from 0 to ${MAX_CONTENT_BYTES}`, 'INVALID_ARGUMENT');
    }
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
    const id = await call(() => ('body' in given
      ? raw.post(given.body, given.type)
      : raw.postFrom(given.read, given.size, given.type)));
    touch(this.#blocks);
    this.#wake();
    const record = await this.record(id);
    if (!record) throw new EndraError(`record ${id} not found after posting`, 'INTERNAL');
    return record;
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
    unwatch(this.#node, this.id, this.#wake);
    unwatch(this.#node, this.id, this.#fetchMissing);
    clearTimeout(this.#fetchTimer);
    this.#node.removeEventListener('content', this.#progress);
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
