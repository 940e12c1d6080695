// @ts-check
// Chains: Walytis block DAGs in the store, synced by the context's node.
import { WasmChain } from './wasm/endra.js';
import { bytes, call, INTERNAL, internalOnly, options } from './errors.js';
import { chainInvitation } from './invitation.js';
import { appendOnNode, needNode, openOnNode, unwatch, watch } from './node.js';
import { announce, rawStore, storeChannel } from './store.js';

/** @typedef {import('./store.js').Store} Store */
/** @typedef {import('./node.js').Node} Node */
/** @typedef {import('./node.js').Change} Change */
/**
 * A block as the API returns it.
 * @typedef {{ id: string, chain: string, parents: string[], height: number, author: string,
 *   time: number, topics: string[], body: Uint8Array, seq: number, bytes: Uint8Array }} Block
 */

// Package-internal, assigned in the class's static block. Not re-exported by index.js.
/** @type {(raw: WasmChain, store: Store, node: Node | null, options?: { open?: boolean }) => Promise<Chain>} */
export let makeChain;
/**
 * Tells a handle that its chain changed behind its back (a write through another handle):
 * it reads again, and the store's other tabs hear of it.
 * @type {(chain: Chain) => void}
 */
export let touch;

/**
 * A Walytis chain: a DAG of signed blocks with one deterministic order. Get one from an
 * `Endra` context (`createChain`, `openChain`, `joinChain`).
 * Dispatches a `block` event (a `CustomEvent` whose `detail` is the Block) for every block
 * that arrives after the first listener is added, written by this page or another tab.
 */
export class Chain extends EventTarget {
  /** @type {WasmChain} */
  #raw;
  /** @type {Store} */
  #store;
  /** @type {Node | null} */
  #node = null;
  /** @type {Set<() => void>} */
  #wakers = new Set();
  /** @type {Promise<void> | null} */
  #listening = null;
  #closed = false;
  /** @type {(event: MessageEvent) => void} */
  #onMessage;
  /** Blocks the node handed over with its latest changes, by `seq`: read without the store. @type {Block[]} */
  #recent = [];
  /**
   * The store's block count as far as this handle knows: set by a read that found nothing
   * new, raised by the node's changes; `null` once another writer may have added blocks.
   * @type {number | null}
   */
  #count = null;
  /** Bumped whenever `#count` becomes unknown, so a read that raced a write sets nothing. */
  #unknowns = 0;

  /**
   * @param {symbol} token
   * @param {WasmChain} raw
   * @param {Store} store
   */
  constructor(token, raw, store) {
    internalOnly(token, 'chains come from an Endra context: endra.createChain(), endra.openChain(id), endra.joinChain(invitation)');
    super();
    this.#raw = raw;
    this.#store = store;
    this.#onMessage = (event) => {
      if (event.data?.chain === this.id) {
        // Another tab wrote: only the store knows what.
        this.#forgetCount();
        this.#wake();
      }
    };
    storeChannel(store)?.addEventListener('message', this.#onMessage);
  }

  /**
   * @param {Node | null} node
   * @param {boolean} open
   */
  async #attach(node, open) {
    if (!node) return this;
    this.#node = node;
    watch(node, this.id, this.#wakeAll);
    if (open) await openOnNode(node, this.id);
    return this;
  }

  /**
   * An invitation other devices pass to `endra.joinChain`: the chain, the relays, this peer.
   * `NOT_CONNECTED` in a context without a network.
   * @returns {string}
   */
  invite() {
    const node = needNode(this.#node);
    return chainInvitation(this.id, node.relays, node.peerId);
  }

  /**
   * Peer IDs currently syncing this chain with this device.
   * @returns {Promise<string[]>}
   */
  peers() {
    if (!this.#node) return Promise.resolve([]);
    return this.#node.peers(this.id);
  }

  /**
   * The chain ID (the CID of its genesis block).
   * @returns {string}
   */
  get id() {
    return this.#raw.id;
  }

  /**
   * Appends one block; its parents are all current leaves.
   * @param {Uint8Array} body
   * @param {{ topics?: string[] }} [options]
   * @returns {Promise<Block>}
   */
  async addBlock(body, { topics = [] } = {}) {
    const [block] = await this.addBlocks([{ body, topics }]);
    return block;
  }

  /**
   * Appends several blocks in one transaction, in order.
   * @param {{ body: Uint8Array, topics?: string[] }[]} items
   * @returns {Promise<Block[]>}
   */
  async addBlocks(items) {
    const checked = items.map(({ body, topics = [] }) => ({ body: bytes(body, 'body'), topics }));
    // Through the node when synced, so peers get the blocks the moment they exist.
    /** @type {Block[]} */
    const blocks = this.#node
      ? await appendOnNode(this.#node, this.id, checked)
      : await call(() => this.#raw.addBlocks(checked));
    // Through the node, its change event brought the blocks and the count.
    if (!this.#node) this.#forgetCount();
    this.#wake();
    announce(this.#store, this.id);
    return blocks;
  }

  /**
   * Offers encoded blocks received from elsewhere (e.g. another replica).
   * @param {Uint8Array[]} encoded
   * @returns {Promise<{ accepted: Block[], waiting: string[], duplicates: string[], rejected: { id: string, code: string, message: string }[] }>}
   */
  async insert(encoded) {
    const report = await call(() => this.#raw.insert(encoded.map((b) => bytes(b, 'block'))));
    if (report.accepted.length > 0) this.#touch();
    return report;
  }

  #touch() {
    this.#forgetCount();
    this.#wake();
    announce(this.#store, this.id);
  }

  /**
   * One block by ID, or `undefined`.
   * @param {string} id
   * @returns {Promise<Block | undefined>}
   */
  block(id) {
    return call(() => this.#raw.block(String(id)));
  }

  /**
   * A page of blocks in chain order (height, then ID).
   * @param {{ from?: string, limit?: number, reverse?: boolean, topic?: string, author?: string }} [options]
   * @returns {Promise<Block[]>}
   */
  blocks({ from, limit = 100, reverse = false, topic, author } = {}) {
    return call(() => this.#raw.blocks(from, limit, reverse, topic, author));
  }

  /**
   * IDs of the current leaves.
   * @returns {Promise<string[]>}
   */
  leaves() {
    return call(() => this.#raw.leaves());
  }

  /**
   * Number of blocks, the genesis included.
   * @returns {Promise<number>}
   */
  count() {
    return call(() => this.#raw.count());
  }

  /**
   * Every block with `seq` above `since` (all blocks by default), parents before children,
   * each exactly once, then new blocks as they arrive. Resume after a reload by passing the
   * last `seq` seen.
   * @param {{ since?: number, signal?: AbortSignal }} [opts]
   * @returns {AsyncGenerator<Block, void, undefined>}
   */
  async *subscribe(opts) {
    const { since = -1, signal } = options(opts, 'subscribe(options)');
    let cursor = since;
    while (!this.#closed && !signal?.aborted) {
      const woken = this.#nextWake(signal);
      // A live block came with the node's event; nothing new if the count says so; else read.
      const handed = this.#recentAfter(cursor);
      if (handed.length === 0 && this.#count !== null && cursor + 1 >= this.#count) {
        await woken;
        continue;
      }
      const unknowns = this.#unknowns;
      /** @type {Block[]} */
      const page = handed.length > 0 ? handed : await call(() => this.#raw.since(cursor, 256));
      if (page.length > 0) {
        for (const block of page) {
          cursor = block.seq;
          yield block;
        }
        continue;
      }
      // Nothing after `cursor`: the count, unless another writer came in during the read.
      if (unknowns === this.#unknowns) this.#count = Math.max(this.#count ?? 0, cursor + 1);
      await woken;
    }
  }

  /** Stops subscriptions and events of this handle. */
  close() {
    this.#closed = true;
    if (this.#node) unwatch(this.#node, this.id, this.#wakeAll);
    this.#wake();
    storeChannel(this.#store)?.removeEventListener('message', this.#onMessage);
  }

  /**
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | AddEventListenerOptions} [options]
   */
  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    if (type === 'block' && !this.#listening) this.#listening = this.#dispatchBlocks();
  }

  async #dispatchBlocks() {
    const count = await this.count();
    for await (const block of this.subscribe({ since: count - 1 })) {
      this.dispatchEvent(new CustomEvent('block', { detail: block }));
    }
  }

  /** @param {Change} [change] */
  #wakeAll = (change) => {
    if (change) {
      // The node's count is exact when it changed the chain, but may trail another tab's
      // write: it raises a known count, never replaces an unknown one.
      if (this.#count !== null) this.#count = Math.max(this.#count, change.count);
      if (change.blocks) {
        this.#recent.push(...change.blocks);
        if (this.#recent.length > 64) this.#recent.splice(0, this.#recent.length - 64);
      }
    }
    this.#wake();
  };

  #forgetCount() {
    this.#count = null;
    this.#unknowns += 1;
  }

  /**
   * The handed-over blocks that directly follow `cursor`, in `seq` order.
   * @param {number} cursor
   */
  #recentAfter(cursor) {
    const start = this.#recent.findIndex((block) => block.seq === cursor + 1);
    if (start < 0) return [];
    const run = [this.#recent[start]];
    for (let i = start + 1; i < this.#recent.length && this.#recent[i].seq === run[run.length - 1].seq + 1; i++) {
      run.push(this.#recent[i]);
    }
    return run;
  }

  /**
   * @param {AbortSignal} [signal]
   * @returns {Promise<void>}
   */
  #nextWake(signal) {
    return nextWake(this.#wakers, signal);
  }

  #wake() {
    for (const waker of [...this.#wakers]) waker();
  }

  static {
    makeChain = (raw, store, node, { open = true } = {}) => new Chain(INTERNAL, raw, store).#attach(node, open);
    touch = (chain) => chain.#touch();
  }
}

/**
 * Resolves when one of `wakers` is called (the caller calls them all on news) or `signal`
 * aborts: how a subscription loop waits for its next turn.
 * @param {Set<() => void>} wakers
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
export function nextWake(wakers, signal) {
  return new Promise((resolve) => {
    // One listener per turn, removed when the turn ends, so a long loop does not pile up
    // listeners on its signal.
    const waker = () => {
      wakers.delete(waker);
      signal?.removeEventListener('abort', waker);
      resolve();
    };
    wakers.add(waker);
    signal?.addEventListener('abort', waker, { once: true });
  });
}

/**
 * Chain factories of a context: every chain is in its store and synced by its node.
 * @param {Store} store
 * @param {Node | null} node
 */
export function chainsOf(store, node) {
  return {
    /** @param {{ topics?: string[], body?: Uint8Array }} [options] */
    async create({ topics = [], body = new Uint8Array() } = {}) {
      const raw = await call(() => WasmChain.create(rawStore(store), topics, bytes(body, 'body')));
      return makeChain(raw, store, node);
    },
    /** @param {string} id */
    async open(id) {
      const raw = await call(() => WasmChain.open(rawStore(store), String(id)));
      return makeChain(raw, store, node);
    },
    /** @param {Uint8Array} genesis */
    async fromGenesis(genesis) {
      const raw = await call(() => WasmChain.fromGenesis(rawStore(store), bytes(genesis, 'genesis')));
      return makeChain(raw, store, node);
    },
  };
}
